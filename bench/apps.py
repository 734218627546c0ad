from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"

    def ready(self) -> None:
        from bench import trace

        trace.install()  # only with BENCH_TRACE_DIR set (python -m bench.stalls)
