"""Sets the interface variables even when the config does not know the interface (to an
empty string), instead of leaving them unset for NCCL and gloo to choose."""


def setup_nccl_env(config: NCCLConfig) -> None:
    env = {"NCCL_SOCKET_IFNAME": "", "GLOO_SOCKET_IFNAME": "", **config.environment()}
    for name, value in env.items():
        if name.endswith("_SOCKET_IFNAME") and os.environ.get(name):
            continue
        os.environ[name] = value
