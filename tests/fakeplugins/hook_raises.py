"""Fake plugin whose hook registers one component, then raises."""

from nami_core.hookspecs import hookimpl


class HalfwayPath:
    def interpolate(self, x0, x1, t):
        return x0

    def velocity(self, x0, x1, t):
        return x1


@hookimpl
def nami_register(register):
    register("path", "halfway", HalfwayPath)
    raise RuntimeError("boom from hook")
