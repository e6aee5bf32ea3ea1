from bench.common import Context


def run(ctx: Context) -> None:
    raise NotImplementedError
