# The Airflow image dynadex runs in (docker-compose.yaml). Same pins as a local install.
FROM apache/airflow:3.3.2-python3.11
USER airflow
COPY --chown=airflow requirements.txt pyproject.toml README.md /opt/dynadex/
COPY --chown=airflow include /opt/dynadex/include
RUN pip install --no-cache-dir -r /opt/dynadex/requirements.txt \
 && pip install --no-cache-dir --no-deps /opt/dynadex
