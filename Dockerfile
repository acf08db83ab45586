# One image for every service of docker-compose.yml that runs our code: the target app under
# the suite's agent, the Locust master and its workers. The same pinned install as the README's
# first command (tests/test_compose.py checks it).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt pyproject.toml README.md channels_chaos_locust_help.pth ./
COPY target_app/ target_app/
COPY load/ load/
COPY locustfile.py ./
RUN pip install --no-cache-dir -r requirements.txt
ENV DJANGO_SETTINGS_MODULE=target_app.settings PYTHONUNBUFFERED=1 DATABASE_PATH=/data/target_app.sqlite3
RUN mkdir -p /data
# Daphne (8000 + i), the agent's API, Locust's web UI and its master's port for workers.
EXPOSE 8000 8700 8089 5557
# Plain Daphne by default (exec: `docker stop` sends its SIGTERM to Daphne itself);
# docker-compose.yml runs the suite's agent instead (which supervises Daphne) and Locust.
CMD ["sh", "-c", "python -m django migrate --noinput -v 0 && exec python -m daphne -b 0.0.0.0 -p 8000 target_app.asgi:application"]
