"""Does not watch the new worker's pidfd: a worker that ends is never reaped, its slot never
comes back, and its client never gets the exit report."""


def _start_worker(self, conn: socket.socket, client: str, session: Session) -> None:
    if len(self._children) >= self._max_workers:
        log.warning("refused %s: all %d worker slots are busy", client, self._max_workers)
        tell_and_close(conn, session.verdict(FULL))
        return
    try:
        with open(os.devnull, "rb") as spare:
            drop_in_children(spare)
            keep_in_children(conn)
            pid = fork_child(lambda: self._serve_client(conn, session))
    except OSError as e:
        log.error("cannot start a worker for %s: %s", client, e)
        tell_and_close(conn, session.verdict(BUSY))
        return
    pidfd = _pidfd_or_kill(pid)
    if pidfd is None:
        conn.close()
        return
    child = _Child(pid, pidfd, conn, client, session)
    drop_in_children(child)
    self._children[pid] = child
    self._watch(conn.fileno(), select.POLLRDHUP, lambda _: self._client_left(child))
    log.info("worker pid %d started for %s", pid, client)
