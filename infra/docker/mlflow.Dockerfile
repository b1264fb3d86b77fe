# syntax=docker/dockerfile:1
# MLflow tracking server for infra/k8s/mlflow.yaml: the stock MLflow image has neither the
# PostgreSQL driver (psycopg2) nor the S3 client (boto3) that a PostgreSQL backend and S3
# artifacts need, nor Flask-WTF, which the basic-auth app (--app-name basic-auth) needs.
# Versions follow constraints.txt. It copies nothing, so any context works:
#
#   docker build -f infra/docker/mlflow.Dockerfile -t YOUR-REGISTRY/mpmae-mlflow:3.17.2 infra/docker
FROM python:3.11.14-slim-bookworm

RUN pip install --no-cache-dir mlflow[auth]==3.17.2 flask-wtf==1.3.0 psycopg2-binary==2.9.13 \
        boto3==1.43.117 \
    && groupadd --gid 1000 mlflow \
    && useradd --create-home --uid 1000 --gid 1000 --shell /usr/sbin/nologin mlflow

# Numeric, so Kubernetes can check runAsNonRoot against the image itself.
USER 1000:1000
WORKDIR /home/mlflow
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
