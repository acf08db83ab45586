# The target app behind Daphne, for docker-compose.yml. Same pinned stack as the local runs.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt pyproject.toml README.md channels_chaos_locust_help.pth ./
COPY target_app/ target_app/
COPY load/ load/
COPY locustfile.py ./
RUN pip install --no-cache-dir -r requirements.txt
ENV DJANGO_SETTINGS_MODULE=target_app.settings PYTHONUNBUFFERED=1 DATABASE_PATH=/data/target_app.sqlite3
RUN mkdir -p /data
EXPOSE 8000
# Plain Daphne by default (exec: `docker stop` sends its SIGTERM to Daphne itself);
# docker-compose.yml runs the suite's agent instead, which supervises Daphne.
CMD ["sh", "-c", "python -m django migrate --noinput -v 0 && exec python -m daphne -b 0.0.0.0 -p 8000 target_app.asgi:application"]
