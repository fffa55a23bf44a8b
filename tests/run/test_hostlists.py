"""Where a run's hosts come from: SLURM hostlists as real clusters write them, the per-node
task counts, hostfiles, and an allocation read through scontrol or the parser."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("run")

# (hostlist, its hosts): forms from SLURM's docs and from real clusters' SLURM_JOB_NODELIST.
# Those SLURM 22.05's `scontrol show hostnames` reads give what it gives; it refuses a suffix
# after a bracket (cn[1-2]-ib), which newer SLURMs and this parser read.
HOSTLISTS = [
    ("node001", ["node001"]),
    ("n1.cluster.local", ["n1.cluster.local"]),
    ("login1,login2", ["login1", "login2"]),
    ("node[006,011]", ["node006", "node011"]),
    ("node[006-011]", ["node006", "node007", "node008", "node009", "node010", "node011"]),
    ("d05-[41-42]", ["d05-41", "d05-42"]),
    ("n[8-12]", ["n8", "n9", "n10", "n11", "n12"]),
    ("x[1-010]", [f"x{i}" for i in range(1, 11)]),  # the first number's width: none
    ("a[01-3]", ["a01", "a02", "a03"]),
    ("a[1-3,5]b", ["a1b", "a2b", "a3b", "a5b"]),
    ("nid0[0001-0003]", ["nid00001", "nid00002", "nid00003"]),
    ("gpu-a100-[01-02],gpu-h100-03", ["gpu-a100-01", "gpu-a100-02", "gpu-h100-03"]),
    ("cn[1-2]-ib", ["cn1-ib", "cn2-ib"]),
    ("rack[1-2]-node[01-02]", ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]),
    ("r[1-2]n[3-4]s", ["r1n3s", "r1n4s", "r2n3s", "r2n4s"]),
    ("[1-3]", ["1", "2", "3"]),
    ("n[2-3].cluster.local", ["n2.cluster.local", "n3.cluster.local"]),
    ("node[1-2],node[1-2]", ["node1", "node2", "node1", "node2"]),  # as written, repeats too
    ("a[7-007]", ["a7"]),  # numbers are numbers: 007 is 7
    ("tux[0-2,5,9-10]", ["tux0", "tux1", "tux2", "tux5", "tux9", "tux10"]),
    ("c[1-2],gpu[01-02],big1", ["c1", "c2", "gpu01", "gpu02", "big1"]),
    ("node[09-10]", ["node09", "node10"]),
    ("n[0]", ["n0"]),
    ("a[1-2]b[1]c[3-4]", ["a1b1c3", "a1b1c4", "a2b1c3", "a2b1c4"]),
]

# (hostlist, words the error must hold)
MALFORMED = [
    ("", "empty hostlist"),
    ("node[1-3", "'[' without its ']'"),
    ("node1-3]", "']' without its '['"),
    ("node[[1-3]]", "'[' inside brackets"),
    ("a,,b", "empty host name"),
    (",a", "empty host name"),
    ("a,", "empty host name"),
    ("node[]", "an empty range"),
    ("node[1,]", "an empty range"),
    ("node[5-3]", "runs backwards"),
    ("node[010-1]", "runs backwards"),
    ("node[a-c]", "'a-c'"),
    ("node[1-3:2]", "'1-3:2'"),
    ("node[1-2-3]", "'1-2-3'"),
    ("node[-3]", "'-3'"),
    ("node[x]", "'x'"),
    ("node[\u0661-\u0663]", "not N or N-M"),  # digits, but not ASCII ones
    ("node1 node2", "a space"),
    ("node[1-70000]", "more than 65536 hosts"),
    ("a[1-300]b[1-300]", "more than 65536 hosts"),  # 300 * 300, refused before expanded
]


@pytest.mark.ex06_1
@pytest.mark.parametrize(("hostlist", "hosts"), HOSTLISTS, ids=[h for h, _ in HOSTLISTS])
def test_a_hostlist_expands_as_slurm_expands_it(hostlist: str, hosts: list[str]) -> None:
    from miniray.hosts import expand_hostlist

    assert expand_hostlist(hostlist) == hosts


@pytest.mark.ex06_1
@pytest.mark.parametrize(("hostlist", "words"), MALFORMED, ids=[h or "empty" for h, _ in MALFORMED])
def test_a_malformed_hostlist_is_a_config_error_that_says_why(hostlist: str, words: str) -> None:
    from miniray import ConfigError
    from miniray.hosts import expand_hostlist

    with pytest.raises(ConfigError, match=r"hostlist|host ") as caught:
        expand_hostlist(hostlist)
    assert words in str(caught.value)


@pytest.mark.ex06_1
def test_a_hostlist_of_exactly_the_bound_expands_and_one_more_is_refused() -> None:
    from miniray import ConfigError
    from miniray.hosts import MAX_HOSTS, expand_hostlist

    assert MAX_HOSTS == 65536
    assert len(expand_hostlist("a[1-256]b[1-256]")) == MAX_HOSTS
    with pytest.raises(ConfigError, match="more than 65536"):
        expand_hostlist("a[1-256]b[1-256],c")  # the bound is for the whole list


@pytest.mark.parametrize(
    ("text", "counts"),
    [("1", [1]), ("2(x3),1", [2, 2, 2, 1]), ("4(x2)", [4, 4]), ("8,4,8", [8, 4, 8])],
)
def test_tasks_per_node_expand_their_repeats(text: str, counts: list[int]) -> None:
    from miniray.hosts import parse_tasks_per_node

    assert parse_tasks_per_node(text) == counts


@pytest.mark.parametrize("text", ["", "0", "2(x0)", "2(3)", "2x3", "(x3)", "2(x3", "1,,2", "a"])
def test_malformed_tasks_per_node_are_config_errors(text: str) -> None:
    from miniray import ConfigError
    from miniray.hosts import parse_tasks_per_node

    with pytest.raises(ConfigError, match="not N or N\\(xM\\)"):
        parse_tasks_per_node(text)


def test_tasks_per_node_are_bounded_before_they_are_made() -> None:
    from miniray import ConfigError
    from miniray.hosts import parse_tasks_per_node

    with pytest.raises(ConfigError, match="more than 65536"):
        parse_tasks_per_node("1(x999999999)")


# --- hostfiles ---


def test_a_hostfile_has_comments_blank_lines_and_slots(tmp_path: Path) -> None:
    from miniray import hosts_from_file

    path = tmp_path / "hostfile"
    path.write_text("# the lab's machines\n\nnode1 slots=4\n  node2   # two GPUs\nnode3 slots=2\n")
    nodes = hosts_from_file(path, num_workers=2, cwd="/tmp")
    assert [(n.host, n.num_workers, n.cwd) for n in nodes] == [
        ("node1", 4, "/tmp"),
        ("node2", 2, "/tmp"),  # no slots: the default given
        ("node3", 2, "/tmp"),
    ]


@pytest.mark.parametrize("word", ["slots=0", "slots=x", "slot=2", "slots=", "slots=٣", "max=2"])
def test_a_bad_slots_word_is_named_with_its_line_number(tmp_path: Path, word: str) -> None:
    from miniray import ConfigError, hosts_from_file

    path = tmp_path / "hostfile"
    path.write_text(f"node1 slots=2\n# a comment\nnode2 {word}\n")
    with pytest.raises(ConfigError, match=f"hostfile:3: '{word}' is not slots=N"):
        hosts_from_file(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n   # and more\n"])
def test_a_hostfile_without_a_host_is_an_error(tmp_path: Path, text: str) -> None:
    from miniray import ConfigError, hosts_from_file

    path = tmp_path / "hostfile"
    path.write_text(text)
    with pytest.raises(ConfigError, match="no host in the file"):
        hosts_from_file(path)


def test_a_hostfile_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    from miniray import ConfigError, hosts_from_file

    with pytest.raises(ConfigError, match="cannot be read"):
        hosts_from_file(tmp_path / "missing")
    (tmp_path / "binary").write_bytes(b"\xff\xfe node1\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        hosts_from_file(tmp_path / "binary")


def test_hosts_option_takes_a_file_or_names(tmp_path: Path) -> None:
    from miniray import ConfigError
    from miniray.hosts import hosts_from_option

    path = tmp_path / "hosts"
    path.write_text("a slots=3\nb\n")
    assert [(n.host, n.num_workers) for n in hosts_from_option(str(path))] == [("a", 3), ("b", 1)]
    assert [n.host for n in hosts_from_option("h1, h2")] == ["h1", "h2"]
    with pytest.raises(ConfigError, match="an empty host name"):
        hosts_from_option("h1,,h2")


# --- a SLURM allocation ---


def fake_scontrol(folder: Path, script: str) -> Path:
    """A `scontrol` in ``folder`` that runs ``script`` (sh); returns the folder, for PATH."""
    folder.mkdir()
    path = folder / "scontrol"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def test_slurm_hosts_come_from_scontrol_when_it_is_on_path(tmp_path: Path) -> None:
    from miniray import hosts_from_slurm

    calls = tmp_path / "calls"
    folder = fake_scontrol(
        tmp_path / "bin", f'echo "$@ SLURM_CONF=$SLURM_CONF" >> {calls}\nprintf "gpu7\\ngpu9\\n"\n'
    )
    environ = {
        "PATH": f"{tmp_path / 'nothing'}{os.pathsep}{folder}",
        "SLURM_CONF": "/etc/slurm/test.conf",
        "SLURM_JOB_NODELIST": "gpu[7,9]",
        "SLURM_TASKS_PER_NODE": "2(x2)",
    }
    nodes = hosts_from_slurm(environ, cwd="/work")
    assert [(n.host, n.num_workers, n.cwd) for n in nodes] == [
        ("gpu7", 2, "/work"),
        ("gpu9", 2, "/work"),
    ]
    # scontrol got the list and the allocation's environment (its SLURM_CONF)
    assert calls.read_text() == "show hostnames gpu[7,9] SLURM_CONF=/etc/slurm/test.conf\n"


def test_slurm_hosts_come_from_the_parser_without_scontrol(tmp_path: Path) -> None:
    from miniray import hosts_from_slurm

    environ = {
        "PATH": str(tmp_path),  # no scontrol there
        "SLURM_JOB_NODELIST": "node[006,011],gpu-[1-2]",
        "SLURM_TASKS_PER_NODE": "2(x3),1",
    }
    nodes = hosts_from_slurm(environ)
    assert [(n.host, n.num_workers) for n in nodes] == [
        ("node006", 2),
        ("node011", 2),
        ("gpu-1", 2),
        ("gpu-2", 1),
    ]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"SLURM_JOB_CPUS_PER_NODE": "16(x2)"}, [16, 16]),  # no tasks per node: the CPUs
        ({"SLURM_TASKS_PER_NODE": "1(x2)", "SLURM_JOB_CPUS_PER_NODE": "16(x2)"}, [1, 1]),
        ({}, [3, 3]),  # neither: num_workers given
    ],
)
def test_slurm_counts_come_from_tasks_then_cpus_then_num_workers(
    tmp_path: Path, counts: dict[str, str], expected: list[int]
) -> None:
    from miniray import hosts_from_slurm

    environ = {"PATH": str(tmp_path), "SLURM_JOB_NODELIST": "n[1-2]", **counts}
    assert [n.num_workers for n in hosts_from_slurm(environ, num_workers=3)] == expected


def test_slurm_outside_an_allocation_says_so(tmp_path: Path) -> None:
    from miniray import ConfigError, hosts_from_slurm

    for environ in ({"PATH": str(tmp_path)}, {"SLURM_JOB_NODELIST": " "}):
        with pytest.raises(ConfigError, match="not inside a SLURM allocation"):
            hosts_from_slurm(environ)


def test_slurm_hosts_read_this_process_s_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import hosts_from_slurm

    # hosts_from_slurm() inside an allocation; it needed os.environ spelt out (None: an
    # AttributeError)
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol: the parser
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-2]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x2)")
    assert [(n.host, n.num_workers) for n in hosts_from_slurm()] == [("n1", 2), ("n2", 2)]


def test_slurm_counts_for_another_number_of_hosts_are_an_error(tmp_path: Path) -> None:
    from miniray import ConfigError, hosts_from_slurm

    environ = {
        "PATH": str(tmp_path),
        "SLURM_JOB_NODELIST": "n[1-3]",
        "SLURM_TASKS_PER_NODE": "2(x2)",
    }
    with pytest.raises(ConfigError) as caught:
        hosts_from_slurm(environ)
    assert "counts 2 hosts, but SLURM_JOB_NODELIST='n[1-3]' names 3" in str(caught.value)


def test_a_malformed_slurm_nodelist_is_an_error_never_localhost(tmp_path: Path) -> None:
    from miniray import ConfigError, hosts_from_slurm

    with pytest.raises(ConfigError, match="'\\[' without its '\\]'"):
        hosts_from_slurm({"PATH": str(tmp_path), "SLURM_JOB_NODELIST": "node[1-3"})


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ('echo "scontrol: fatal: no config" >&2\nexit 1\n', "exit status 1): scontrol: fatal"),
        # SLURM 22.05 says this and exits 0, printing nothing
        ('echo "Invalid hostlist: $3" >&2\n', "exit status 0): Invalid hostlist: node[1-3"),
        # ... or prints a broken name for an unclosed bracket
        ('echo "node]"\n', "exit status 0): node]"),
    ],
)
def test_a_failing_scontrol_is_an_error_that_quotes_it(
    tmp_path: Path, script: str, said: str
) -> None:
    from miniray import ConfigError, hosts_from_slurm

    folder = fake_scontrol(tmp_path / "bin", script)
    environ = {"PATH": str(folder), "SLURM_JOB_NODELIST": "node[1-3"}
    with pytest.raises(ConfigError, match="show hostnames 'node\\[1-3' failed") as caught:
        hosts_from_slurm(environ)
    assert said in str(caught.value)


def test_an_scontrol_that_hangs_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import ConfigError, hosts, hosts_from_slurm

    monkeypatch.setattr(hosts, "SCONTROL_TIMEOUT", 0.5)
    folder = fake_scontrol(tmp_path / "bin", f"exec {shutil.which('sleep')} 30\n")
    environ = {"PATH": str(folder), "SLURM_JOB_NODELIST": "n1"}
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"no answer in 0\.5 s"):
        hosts_from_slurm(environ)
    assert time.monotonic() - started < 5.0


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="SLURM's scontrol is not installed")
def test_the_parser_agrees_with_slurms_own_scontrol(tmp_path: Path) -> None:
    """Where SLURM is installed: every form of the table that its scontrol reads, it reads
    as the parser does (SLURM 22.05 refuses a suffix after a bracket, cn[1-2]-ib)."""
    from miniray import ConfigError
    from miniray.hosts import _scontrol_hostnames, expand_hostlist

    conf = tmp_path / "slurm.conf"  # scontrol needs a configuration, not a controller
    conf.write_text(
        "ClusterName=t\nSlurmctldHost=localhost\nNodeName=n1 CPUs=1\n"
        "PartitionName=p Nodes=n1 Default=YES State=UP\n"
    )
    environ = {"PATH": os.environ["PATH"], "SLURM_CONF": str(conf)}
    scontrol = shutil.which("scontrol")
    assert scontrol is not None
    compared = 0
    for hostlist, hosts in HOSTLISTS:
        try:
            theirs = _scontrol_hostnames(scontrol, hostlist, environ)
        except ConfigError as error:  # a form this SLURM does not read
            assert "Invalid hostlist" in str(error)
            continue
        assert theirs == expand_hostlist(hostlist) == hosts, hostlist
        compared += 1
    assert compared >= len(HOSTLISTS) // 2
