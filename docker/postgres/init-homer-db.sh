#!/bin/bash
# docker/postgres/init-homer-db.sh - run once by the postgres image on an
# empty data volume (/docker-entrypoint-initdb.d/).  homer-app (the
# homer-webapp service) creates and migrates the Homer 7 databases
# itself; this only makes sure homer_config and homer_data exist before
# heplify-server connects, as sipcapture/homer7-docker's init-user-db.sh
# does for homer_config.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-EOSQL
	CREATE DATABASE homer_config;
	CREATE DATABASE homer_data;
EOSQL
