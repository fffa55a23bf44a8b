"""Overwrites every variable, the interface too: the interface the user chose by hand
(NCCL_SOCKET_IFNAME=ib0) is replaced by our guess."""


def setup_nccl_env(config: NCCLConfig) -> None:
    for name, value in config.environment().items():
        os.environ[name] = value
