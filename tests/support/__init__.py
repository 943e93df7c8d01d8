"""What the tests share, in one place: fixtures (pytest plugins wired in tests/conftest.py) and helpers.

* ``emulator``: the bundled AWS emulator, started with the knobs a test asks for (``aws``, ``emulator``),
  ``make_table``, ``wait_export``, the emulator's clock;
* ``sync``: the stream sync against the emulator (``clients``, ``converge``, ``Writer`` and the other workloads);
* ``store``: building and reading stores without AWS (``publish_items``, ``new_store``, ``dump``, ``cli``);
* ``records``: random DynamoDB values and stream records;
* ``fake_streams``: an in-memory DynamoDB Streams endpoint for unit tests;
* ``exports``: the genuine AWS export bundled with dynadex, copied so tests may corrupt it;
* ``servers``: free ports and a throw-away PostgreSQL cluster;
* ``airflow``: a real Airflow (metadata DB, DAG runs, XComs, ``make airflow`` as a child process);
* ``poll``: ``wait_until``, the one bounded wait on a condition (no fixed sleeps in tests);
* ``clock``: ``sync_clock_ahead``, the stream sync's clock moved on for one block (the emulator's: ``aws.clock``);
* ``bench`` and ``spoil``: running a bench script as a test; spoiling Parquet row groups.

Test modules import helpers from here only, never from another test module.
"""
