from bench.common import Context


def rss(ctx: Context) -> None:
    raise NotImplementedError


resync = idle = latency = storm = rss
