# The target app behind Daphne, for docker-compose.yml. Same pinned stack as the local runs.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY target_app/ target_app/
COPY load/ load/
COPY locustfile.py ./
ENV DJANGO_SETTINGS_MODULE=target_app.settings PYTHONUNBUFFERED=1 DATABASE_PATH=/data/target_app.sqlite3
RUN mkdir -p /data
EXPOSE 8000
# exec makes Daphne PID 1, so `docker stop` sends its SIGTERM to Daphne itself.
CMD ["sh", "-c", "python -m django migrate --noinput -v 0 && exec python -m daphne -b 0.0.0.0 -p 8000 target_app.asgi:application"]
