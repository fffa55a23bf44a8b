"""Sets every variable with setdefault, as if each were the user's choice: a stale
MASTER_PORT or RANK left in the environment survives, and the rank joins the wrong
rendezvous as the wrong rank."""


def setup_nccl_env(config: NCCLConfig) -> None:
    for name, value in config.environment().items():
        os.environ.setdefault(name, value)
