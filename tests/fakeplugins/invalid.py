"""Fake plugin that registers a valid path, then a solver without ``integrate``."""

from nami_core.hookspecs import hookimpl


class FinePath:
    def interpolate(self, x0, x1, t):
        return x0

    def velocity(self, x0, x1, t):
        return x1


class NotASolver:
    def step(self, y):
        return y


@hookimpl
def nami_register(register):
    register("path", "fine", FinePath)
    register("solver", "not_a_solver", NotASolver)
