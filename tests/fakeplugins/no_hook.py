"""Fake plugin that forgot the ``@hookimpl`` marker."""


def nami_register(register):
    raise AssertionError("never called: not marked as a hook implementation")
