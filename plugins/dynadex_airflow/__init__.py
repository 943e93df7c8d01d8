"""Airflow glue for dynadex: a hook, a trigger, operators and task bodies. Thin: the work is in include/dynadex."""
