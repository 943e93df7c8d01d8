"""``dynadex serve``: the store over HTTP, for applications, with Rockset's query API (decision 0031).

One concern per module:

* ``server``: uvicorn, the socket, the signals;
* ``app``: the Starlette application, errors in Rockset's shape, request metrics;
* ``rockset_api``: Rockset's routes and wire shapes (queries, Query Lambdas, collections);
* ``service``: what handlers share; ``readers``: the sandboxed connections, one whole snapshot per request;
* ``queries``: one query within its limits; ``sql``: parameters bound, names resolved, what a query reads;
* ``access``: what a key may do; ``keys``: API keys, hashed; ``lambdas``: Query Lambdas;
* ``state``: the SQLite file keys and lambdas live in; ``metrics``: Prometheus text; ``errors``: refusals.

Nothing here imports Airflow. The store is read only through ``Store.read_snapshot`` (sandboxed).
"""
