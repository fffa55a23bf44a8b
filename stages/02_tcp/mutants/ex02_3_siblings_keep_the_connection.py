"""Does not register the new child to be dropped at later forks: every later worker keeps a
copy of its siblings' connections and pidfds."""


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
    self._children[pid] = child
    self._watch(pidfd, select.POLLIN, lambda _: self._reap(child))
    self._watch(conn.fileno(), select.POLLRDHUP, lambda _: self._client_left(child))
    log.info("worker pid %d started for %s", pid, client)
