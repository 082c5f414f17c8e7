# kgsynth: the CLI and the REST API (`kgsynth serve`). Used by docker-compose.yml.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kg kg
COPY engine engine
COPY loaders loaders
COPY cypher cypher
RUN pip install --no-cache-dir ".[service]"
# no model, no dataset and no secret is baked in: they come from volumes and the environment
ENV HF_HUB_OFFLINE=1
EXPOSE 8080
ENTRYPOINT ["kgsynth"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
