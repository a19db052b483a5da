"""Static checks of the container images (images/*/Dockerfile), the Makefile that builds them and what the operator
expects of them. No Docker and no network: this machine has neither an engine nor a registry, so what can be
checked without building is checked here, and checked hard, because an image mistake otherwise shows up only as a
pod that will not start in someone's cluster (a command that is not in the image, a base that moved under a tag,
a uid the pod security context refuses, a credential baked into a layer).

The Dockerfiles are read with the small parser below (instructions, line continuations, comments, flags, exec
form, ARG substitution in FROM) rather than with a dependency, so the checks cannot silently weaken.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from w4s_operator import children as operator_children
from w4s_operator.settings import Settings

from w4s.resources import MetaAgentTrainingSpec, WorkflowOptimizationSpec
from w4s.sandbox import kube as sandbox_kube

ROOT = Path(__file__).resolve().parents[1]
IMAGES_DIR = ROOT / "images"
DOCKERFILES = sorted(IMAGES_DIR.glob("*/Dockerfile"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
NONROOT_UID = 65532
FAKE_DIGEST = "sha256:" + "0123456789abcdef" * 4

# ---------------------------------------------------------------------------------------------------------------
# A Dockerfile parser: enough of the reference syntax to check what we write, strict about the rest.

KNOWN_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                      "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
_DIRECTIVE = re.compile(r"#\s*(syntax|escape|check)\s*=\s*(\S+)\s*$", re.IGNORECASE)
_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?(?:\s+|$)")
_HEREDOC = re.compile(r"<<-?\s*['\"]?[A-Za-z_]\w*")
_NAME = re.compile(r"[A-Za-z_]\w*")


class DockerfileError(ValueError):
    pass


@dataclass
class Instruction:
    keyword: str
    text: str  # everything after the keyword, continuations joined with a space
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    rest: str = ""  # text without the leading --flags

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's arguments, or None for the shell form."""
        if self.rest.startswith("["):
            try:
                value = json.loads(self.rest)
            except json.JSONDecodeError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        return None

    def words(self) -> list[str]:
        return self.exec_form() or self.rest.split()


@dataclass
class Stage:
    index: int
    base: str  # as written (before ARG substitution)
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for inst in self.all("ENV"):
            out.update(parse_pairs(inst.rest, legacy=True))
        return out

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for inst in self.all("LABEL"):
            out.update(parse_pairs(inst.rest, legacy=False))
        return out

    def args(self) -> dict[str, str | None]:
        return dict(parse_arg(i.rest) for i in self.all("ARG"))

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str | None]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def name(self) -> str:
        return self.path.parent.name

    def stage_names(self) -> set[str]:
        return {s.name for s in self.stages if s.name}

    def instructions(self, keyword: str | None = None) -> list[Instruction]:
        return [i for s in self.stages for i in s.instructions if keyword is None or i.keyword == keyword]

    def run_text(self) -> str:
        return "\n".join(i.rest for i in self.instructions("RUN"))


def parse_pairs(text: str, *, legacy: bool) -> dict[str, str]:
    """KEY=VALUE pairs (quotes allowed), or the legacy `ENV KEY VALUE` form."""
    import shlex

    tokens = shlex.split(text, posix=True)
    if legacy and tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    pairs = {}
    for token in tokens:
        if "=" not in token:
            raise DockerfileError(f"expected KEY=VALUE, got {token!r} in {text!r}")
        key, value = token.split("=", 1)
        pairs[key] = value
    return pairs


def parse_arg(text: str) -> tuple[str, str | None]:
    name, sep, default = text.strip().partition("=")
    if not _NAME.fullmatch(name):
        raise DockerfileError(f"bad ARG name {name!r}")
    return name, (default.strip("\"'") if sep else None)


def _logical_lines(source: str) -> list[tuple[int, str]]:
    """Join continuation lines; drop comments and blank lines (also inside a continuation, as Docker does)."""
    lines = source.splitlines()
    escape = "\\"
    for raw in lines:  # parser directives come first, before any other line
        match = _DIRECTIVE.match(raw.strip())
        if not match:
            break
        if match.group(1).lower() == "escape":
            escape = match.group(2)
            if escape not in ("\\", "`"):
                raise DockerfileError(f"escape directive must be \\ or `, not {escape!r}")
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment or blank line, on its own or inside a continuation
        if not current:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            current.append(body[:-1].strip())
            continue
        current.append(body.strip())
        out.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        raise DockerfileError(f"line {start}: the file ends inside a line continuation")
    return out


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword not in KNOWN_INSTRUCTIONS:
            raise DockerfileError(f"{path}:{line}: unknown instruction {keyword!r}")
        if _HEREDOC.search(rest):
            raise DockerfileError(f"{path}:{line}: heredocs are not supported by this parser; use a RUN with &&")
        inst = Instruction(keyword, rest.strip(), line)
        body = inst.text
        if keyword in {"FROM", "COPY", "ADD", "RUN"}:
            while (match := _FLAG.match(body)):
                inst.flags[match.group(1)] = match.group(2) or ""
                body = body[match.end():]
        inst.rest = body.strip()
        if keyword == "FROM":
            words = inst.rest.split()
            if len(words) == 3 and words[1].lower() == "as":
                base, name = words[0], words[2]
            elif len(words) == 1:
                base, name = words[0], None
            else:
                raise DockerfileError(f"{path}:{line}: FROM takes IMAGE [AS NAME], got {inst.rest!r}")
            stages.append(Stage(len(stages), base, name, [inst]))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(f"{path}:{line}: only ARG may come before the first FROM, not {keyword}")
            name, default = parse_arg(inst.rest)
            global_args[name] = default
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError(f"{path}: no FROM")
    return Dockerfile(path, global_args, stages)


def expand(text: str, env: dict[str, str | None]) -> str:
    """Docker's variable substitution: $NAME, ${NAME}, ${NAME:-word}, ${NAME:+word}, with nesting in `word`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1:i + 2] == "$":
            out.append("$")
            i += 2
        elif char == "$" and text[i + 1:i + 2] == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise DockerfileError(f"unbalanced ${{...}} in {text!r}")
            inner = text[i + 2:j - 1]
            name_match = _NAME.match(inner)
            if not name_match:
                raise DockerfileError(f"bad variable in {text!r}")
            name, modifier = name_match.group(), inner[name_match.end():]
            value = env.get(name) or ""
            if modifier.startswith(":-"):
                out.append(value or expand(modifier[2:], env))
            elif modifier.startswith(":+"):
                out.append(expand(modifier[2:], env) if value else "")
            elif modifier == "":
                out.append(value)
            else:
                raise DockerfileError(f"unsupported substitution {inner!r} in {text!r}")
            i = j
        elif char == "$" and (name_match := _NAME.match(text, i + 1)):
            out.append(env.get(name_match.group()) or "")
            i = name_match.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


@cache
def dockerfile(name: str) -> Dockerfile:
    return parse_dockerfile(IMAGES_DIR / name / "Dockerfile")


def all_dockerfiles() -> list[Dockerfile]:
    return [dockerfile(p.parent.name) for p in DOCKERFILES]


def copy_sources(df: Dockerfile) -> list[tuple[Instruction, list[str], str]]:
    """(instruction, sources, destination) of every COPY/ADD that reads the build context (no --from)."""
    out = []
    for inst in df.instructions("COPY") + df.instructions("ADD"):
        if "from" in inst.flags:
            continue
        words = inst.words()
        out.append((inst, words[:-1], words[-1]))
    return out


# ---------------------------------------------------------------------------------------------------------------
# .dockerignore: Docker's rules (patterns relative to the context root, the last match wins, a pattern matching
# a parent directory matches everything below it, `**` spans directories).

def _ignore_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i:end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@cache
def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _ignore_regex(line[1:] if negated else line)))
    return rules


def ignored(path: str) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in dockerignore():
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negated
    return excluded


# ---------------------------------------------------------------------------------------------------------------
# Helpers over the project's other files.

def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def lock() -> ModuleType:
    return _load(IMAGES_DIR / "lock.py", "w4s_images_lock")


@cache
def makefile_vars() -> dict[str, str]:
    """Simple `NAME := value` / `NAME ?= value` assignments of the Makefile (enough for the checks below)."""
    out = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z_][\w-]*)\s*(?::=|\?=|=)\s*(.*)$", line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def makefile_images() -> list[str]:
    return makefile_vars()["IMAGES"].split()


@cache
def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (IMAGES_DIR / "constraints.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"images/constraints.txt: {line!r} is not an exact NAME==VERSION pin"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"images/constraints.txt pins {name} twice"
        pins[name] = match.group(2)
    return pins


@cache
def values() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "charts" / "w4s" / "values.yaml").read_text())


def image_name(ref: str) -> str:
    """`ghcr.io/w4s-project/runner:0.1.0` -> `runner` (the images/ directory and the Makefile name)."""
    return ref.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def _body(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "w4s.io/v1alpha1", "kind": kind,
            "metadata": {"name": "img", "namespace": "team-a", "uid": "u-1", "generation": 1}, "spec": spec}


def operator_containers() -> list[tuple[str, str, dict[str, Any]]]:
    """(role, image, container) of every container the operator creates, from the examples' resources: a
    WorkflowOptimization that serves its meta-agent (runner, gateway, sandbox, fetch-weights, vLLM) and
    MetaAgentTrainings on one GPU (single.yaml), on two in full fine-tuning (fsdp.yaml) and with LoRA
    (ddp.yaml)."""
    settings = Settings()
    wfo = yaml.safe_load((ROOT / "examples" / "wfo-embedded.yaml").read_text())["spec"]
    objs = [c.obj for c in operator_children.workflow_optimization_children(
        _body("WorkflowOptimization", wfo), WorkflowOptimizationSpec.model_validate(wfo), settings,
        gateway_ip="10.96.0.10", meta_agent_weights="s3://w4s/models/m",
        start_runner=True, running=True,
        admin_token="t" * 43)]
    mat = yaml.safe_load((ROOT / "examples" / "mat-rwr.yaml").read_text())["spec"]
    for gpus, lora in ((1, None), (2, None), (2, {"rank": 8})):
        spec = {**mat, "resources": {**mat["resources"], "gpus": gpus}, **({"lora": lora} if lora else {})}
        objs += [c.obj for c in operator_children.training_children(
            _body("MetaAgentTraining", spec), MetaAgentTrainingSpec.model_validate(spec), settings,
            trajectories=["s3://w4s/runs/a"], start=True, running=True)]
    out = []
    for obj in objs:
        pod = obj.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        for container in pod.get("initContainers", []) + pod["containers"]:
            out.append((f"{obj['kind']}/{container['name']}", container["image"], container))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The parser itself.

def test_parser_handles_continuations_comments_flags_and_substitution(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.12.12-slim\nARG BASE_DIGEST=\n\n"
        "FROM ${BASE}${BASE_DIGEST:+@${BASE_DIGEST}} AS build\n"
        "RUN --mount=type=cache,target=/c apt-get update \\\n"
        "    # a comment inside the continuation\n\n"
        "    && echo done\n"
        "ENV A=1 B=\"two words\"\n"
        "FROM scratch\n"
        "COPY --from=build --chown=1:1 /a /b\n"
        'ENTRYPOINT ["python", "-I"]\n')
    df = parse_dockerfile(path)
    assert df.global_args == {"BASE": "python:3.12.12-slim", "BASE_DIGEST": ""}
    assert [s.name for s in df.stages] == ["build", None]
    run = df.stages[0].all("RUN")[0]
    assert run.flags == {"mount": "type=cache,target=/c"} and run.rest == "apt-get update && echo done"
    assert df.stages[0].env() == {"A": "1", "B": "two words"}
    assert df.final.all("COPY")[0].flags == {"from": "build", "chown": "1:1"}
    assert df.final.last("ENTRYPOINT").exec_form() == ["python", "-I"]
    assert expand(df.stages[0].base, df.global_args) == "python:3.12.12-slim"
    assert expand(df.stages[0].base, {**df.global_args, "BASE_DIGEST": FAKE_DIGEST}) == \
        f"python:3.12.12-slim@{FAKE_DIGEST}"
    for bad in ("FROM a\nBOGUS x\n", "RUN x\n", "FROM a\nRUN a \\\n", "FROM a\nRUN cat <<EOF\nx\nEOF\n"):
        path.write_text(bad)
        with pytest.raises(DockerfileError):
            parse_dockerfile(path)


# ---------------------------------------------------------------------------------------------------------------
# Every Dockerfile.

def test_there_is_a_dockerfile_per_chart_image() -> None:
    assert {p.parent.name for p in DOCKERFILES} == {"operator", "runner", "sandbox", "trainer", "meta-agent"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_parses_and_stages_are_consistent(path: Path) -> None:
    df = parse_dockerfile(path)
    names = [s.name for s in df.stages if s.name]
    assert len(names) == len(set(names)), f"{path}: duplicate stage names {names}"
    for stage in df.stages:
        for inst in stage.all("COPY"):
            source = inst.flags.get("from")
            if source is not None:
                earlier = {s.name for s in df.stages[:stage.index] if s.name}
                assert source in earlier, f"{path}:{inst.line}: COPY --from={source} names no earlier stage"
    assert not df.instructions("ADD"), f"{path}: use COPY (ADD fetches URLs and unpacks archives implicitly)"
    # A `# syntax=` directive makes BuildKit pull a frontend image by a floating tag before anything else; the
    # built-in frontend reads everything these files use.
    assert not re.search(r"^#\s*syntax\s*=", path.read_text(), re.MULTILINE | re.IGNORECASE), \
        f"{path}: drop the syntax directive (an unpinned frontend image)"
    assert not df.instructions("MAINTAINER"), f"{path}: MAINTAINER is deprecated; use LABEL"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned_to_an_exact_version_with_an_optional_digest(path: Path) -> None:
    """A floating tag (latest, 3.12, v0) changes under the same Dockerfile; an exact tag does not change by
    convention, and a release adds the digest through the build ARG, which changes never."""
    df = parse_dockerfile(path)
    for stage in df.stages:
        earlier = {s.name for s in df.stages[:stage.index] if s.name}
        resolved = expand(stage.base, df.global_args)
        if resolved in earlier or resolved == "scratch":
            continue
        match = re.fullmatch(r"(?P<repo>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)", resolved)
        assert match, f"{path}: FROM {stage.base} resolves to {resolved!r}, not REPOSITORY:TAG"
        tag = match.group("tag")
        assert tag != "latest" and re.match(r"v?\d+\.\d+\.\d+", tag), \
            f"{path}: {resolved} is not pinned to an exact version (MAJOR.MINOR.PATCH tag)"
        hooks = re.findall(r"\$\{(\w+):\+@\$\{\1\}\}", stage.base)
        assert len(hooks) == 1, f"{path}: FROM {stage.base} has no ${{X_DIGEST:+@${{X_DIGEST}}}} digest hook"
        digest_arg = hooks[0]
        assert digest_arg in df.global_args and not df.global_args[digest_arg], \
            f"{path}: {digest_arg} must be a global ARG with an empty default (no invented digests)"
        pinned = expand(stage.base, {**df.global_args, digest_arg: FAKE_DIGEST})
        assert pinned == f"{resolved}@{FAKE_DIGEST}"
    for name, default in df.global_args.items():
        if name.endswith("_DIGEST"):
            assert not default, f"{path}: {name} has a default; digests come from the release (make ... {name}=)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_runs_as_the_pods_numeric_non_root_user(path: Path) -> None:
    """Numeric, so runAsNonRoot can verify it without a passwd lookup; 65532, the uid the operator's pods and the
    chart's Deployment run as (a mismatch leaves files the process cannot read or write)."""
    final = parse_dockerfile(path).final
    user = final.last("USER")
    assert user is not None, f"{path}: the final stage sets no USER (it would run as root)"
    assert re.fullmatch(rf"{NONROOT_UID}(:{NONROOT_UID})?", user.rest), \
        f"{path}: final USER is {user.rest!r}, expected {NONROOT_UID}:{NONROOT_UID}"


def test_the_pods_run_as_the_images_user() -> None:
    assert operator_children._NONROOT["runAsUser"] == NONROOT_UID == operator_children._NONROOT["runAsGroup"]
    assert sandbox_kube._SANDBOX_UID == NONROOT_UID
    chart = (ROOT / "charts" / "w4s" / "templates" / "deployment.yaml").read_text()
    assert f"runAsUser: {NONROOT_UID}" in chart


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_build_arg_or_env_has_a_secret_like_name(path: Path) -> None:
    """ARG values are recorded in the image history and ENV values in its config: neither is a place for a
    credential, so none may even be named like one."""
    df = parse_dockerfile(path)
    names = list(df.global_args)
    for stage in df.stages:
        names += list(stage.args()) + list(stage.env())
    secretish = re.compile(r"KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|AUTH", re.IGNORECASE)
    bad = [n for n in names if secretish.search(n)]
    assert not bad, f"{path}: secret-like ARG/ENV names {bad}"
    assert "type=secret" not in path.read_text(), f"{path}: the images need no build secrets"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_copy_sources_exist_and_pass_the_dockerignore(path: Path) -> None:
    df = parse_dockerfile(path)
    for inst, sources, _dest in copy_sources(df):
        assert sources, f"{path}:{inst.line}: COPY without a source"
        for source in sources:
            assert not source.startswith("/") and ".." not in source.split("/"), \
                f"{path}:{inst.line}: {source} leaves the build context"
            local = ROOT / source
            assert local.exists(), f"{path}:{inst.line}: COPY source {source} does not exist in the repository"
            if local.is_dir():
                files = [p for p in local.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
                assert files, f"{path}:{inst.line}: {source} is an empty directory"
                kept = [p for p in files if not ignored(p.relative_to(ROOT).as_posix())]
                assert kept, f"{path}:{inst.line}: .dockerignore keeps everything under {source} out"
            else:
                assert not ignored(source), f"{path}:{inst.line}: .dockerignore keeps {source} out of the context"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    for path in (".git/HEAD", ".venv/bin/python", "w4s/__pycache__/cli.cpython-312.pyc", ".pytest_cache/v/x",
                 ".ruff_cache/x", "runs/quickstart/records.jsonl", "tests/test_images.py", "w4s.egg-info/PKG-INFO",
                 ".env", "w4s/.env", "build/images/runner.json", "bench/operator.py", "docs/images.md",
                 "training_jobs/__pycache__/train.cpython-312.pyc"):
        assert ignored(path), f".dockerignore lets {path} into the build context"
    for path in ("pyproject.toml", "README.md", "images/constraints.txt", "w4s/cli.py", "w4s/workflow/worker.py",
                 "operator/w4s_operator/main.py", "training_jobs/accelerate/ddp.yaml"):
        assert not ignored(path), f".dockerignore keeps {path} out, but an image needs it"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_sets_python_environment_and_oci_labels(path: Path) -> None:
    final = parse_dockerfile(path).final
    env = final.env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", f"{path}: final stage lacks PYTHONDONTWRITEBYTECODE=1"
    labels = final.labels()
    for key in ("source", "version", "licenses", "revision", "title"):
        assert f"org.opencontainers.image.{key}" in labels, f"{path}: no org.opencontainers.image.{key} label"
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}" and "VERSION" in final.args(), \
        f"{path}: the version label must come from the VERSION build arg (the Makefile passes TAG)"
    assert labels["org.opencontainers.image.source"] == "${SOURCE}" and "SOURCE" in final.args()


def _pip_lines(df: Dockerfile) -> list[tuple[Stage, Instruction, str]]:
    out = []
    for stage in df.stages:
        for inst in stage.all("RUN"):
            for command in re.split(r"&&|;", inst.rest):
                if re.search(r"\bpip\s+(install|wheel)\b", command):
                    out.append((stage, inst, command.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_python_packages_come_from_the_pinned_constraints_without_a_cache(path: Path) -> None:
    df = parse_dockerfile(path)
    for stage, inst, command in _pip_lines(df):
        where = f"{path}:{inst.line}: {command!r}"
        assert "--no-cache-dir" in command, f"{where} keeps pip's cache in the layer"
        assert not re.search(r"\s(-U|--upgrade)\b", command), f"{where} upgrades to whatever is newest"
        pinned = "--no-index" in command or "--constraint images/constraints.txt" in command
        assert pinned, f"{where} installs without --constraint images/constraints.txt (or --no-index)"
        if re.search(r"\s\"?\.(\[|\"|\s|$)", command + " "):
            assert "PIP_CONSTRAINT=/src/images/constraints.txt" in inst.rest, \
                f"{where} builds w4s without PIP_CONSTRAINT, so its build backend is unpinned"
        assert stage is not df.final, f"{where} installs packages in the final stage; build them in a builder"
    for inst in df.instructions("RUN"):
        if "apt-get install" in inst.rest:
            assert "--no-install-recommends" in inst.rest and "rm -rf /var/lib/apt/lists/*" in inst.rest, \
                f"{path}:{inst.line}: apt-get install without --no-install-recommends and a list cleanup"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_that_build_python_packages_use_a_builder_stage_and_ship_no_compiler(path: Path) -> None:
    df = parse_dockerfile(path)
    compilers = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3[\d.]*-dev|libc6-dev)\b")
    for inst in df.final.all("RUN"):
        if "apt-get install" in inst.rest:
            assert not compilers.search(inst.rest), f"{path}:{inst.line}: a compiler in the final stage"
    if _pip_lines(df):
        assert len(df.stages) >= 2, f"{path}: builds Python packages but has no builder stage"
        copied = [i.flags["from"] for i in df.final.all("COPY") if "from" in i.flags]
        assert copied, f"{path}: the final stage copies nothing from the builder"


def test_constraints_pin_every_requirement_an_image_installs() -> None:
    pins = constraints()
    reqs = [Requirement(r) for r in lock().requirements(PYPROJECT)]
    assert {"setuptools", "torch", "kopf", "accelerate"} <= {canonicalize_name(r.name) for r in reqs}
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pins, f"images/constraints.txt has no pin for {req} (run `make constraints`)"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"images/constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"


def test_images_run_the_python_the_constraints_were_resolved_for() -> None:
    """Wheels resolved for one minor version may not exist (or differ) for another."""
    wanted = lock().PYTHON_VERSION
    for df in all_dockerfiles():
        for stage in df.stages:
            resolved = expand(stage.base, df.global_args)
            if resolved.startswith("python:"):
                assert resolved.split(":", 1)[1].startswith(f"{wanted}."), f"{df.path}: {resolved} is not {wanted}"
    trainer = dockerfile("trainer").run_text()
    assert f"python{wanted}" in trainer and f"python{wanted}-venv" in trainer


# ---------------------------------------------------------------------------------------------------------------
# What the operator and the chart run must be in the images.

def _venv_bin(df: Dockerfile) -> str:
    path = df.final.env().get("PATH", "")
    first = path.split(":", 1)[0]
    assert first.endswith("/venv/bin"), f"{df.path}: PATH does not start with the venv's bin ({path!r})"
    return first


def _installs_project(df: Dockerfile, extra: str | None) -> bool:
    """Whether a `pip install` puts w4s (from the source tree or the built wheel) into the image's environment,
    with `extra` among its extras when given: building a wheel set with an extra is not installing it."""
    for _stage, _inst, command in _pip_lines(df):
        if not re.search(r"\bpip\s+install\b", command):
            continue
        for word in command.split():
            match = re.fullmatch(r"\"?(?:\.|w4s)(?:\[([\w,]+)\])?\"?", word)
            if match and (extra is None or extra in (match.group(1) or "").split(",")):
                return True
    return False


def _check_console_script(df: Dockerfile, command: list[str]) -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert command[0] in scripts, f"{command[0]} is not a console script in pyproject [project.scripts]"
    venv_bin = _venv_bin(df)
    venv = venv_bin.rsplit("/bin", 1)[0]
    assert any(i.flags.get("from") and i.words()[0].rstrip("/") in (venv, venv.rsplit("/", 1)[0])
               for i in df.final.all("COPY")), f"{df.path}: the final stage does not copy the venv {venv}"
    extra = "operator" if command[0] == "w4s-operator" else None
    assert _installs_project(df, extra), f"{df.path}: {command[0]} needs w4s{f'[{extra}]' if extra else ''} installed"
    if command[0] == "w4s":
        from w4s.cli import build_parser

        try:
            build_parser().parse_args(command[1:])
        except SystemExit as exc:
            raise AssertionError(f"`{' '.join(command)}` is not a valid w4s command line") from exc


def _check_python_module(df: Dockerfile, command: list[str]) -> None:
    assert "-m" in command, f"{command}: python without -m"
    module = command[command.index("-m") + 1]
    path = module.replace(".", "/") + ".py"
    assert (ROOT / path).is_file(), f"{module} does not exist in the repository"
    sources = [s.rstrip("/") for _, srcs, _ in copy_sources(df) for s in srcs]
    assert any(path == s or path.startswith(s + "/") for s in sources), f"{df.path}: nothing copies {path}"
    assert "/usr/local/bin" in df.final.env().get("PATH", ""), f"{df.path}: python is not on PATH"


def _check_accelerate(df: Dockerfile, command: list[str]) -> None:
    assert command[1] == "launch"
    assert _installs_project(df, "train"), f"{df.path}: accelerate comes with w4s[train], which it does not install"
    config = command[command.index("--config_file") + 1]
    assert config.startswith(operator_children.ACCELERATE_CONFIGS + "/")
    dests = {dest.rstrip("/"): srcs for _, srcs, dest in copy_sources(df)}
    assert operator_children.ACCELERATE_CONFIGS in dests, \
        f"{df.path}: nothing is copied to {operator_children.ACCELERATE_CONFIGS}"
    source_dirs = [ROOT / s for s in dests[operator_children.ACCELERATE_CONFIGS]]
    assert any((d / Path(config).name).is_file() for d in source_dirs), \
        f"{config} is not among the accelerate configs the trainer image copies"
    module = command[command.index("-m") + 1]
    package = module.split(".", 1)[0]
    assert any(s.rstrip("/") == package for _, srcs, _ in copy_sources(df) for s in srcs), \
        f"{df.path}: the {package} package is not copied into the image"


def _check_vllm(df: Dockerfile, container: dict[str, Any]) -> None:
    entry = df.final.last("ENTRYPOINT")
    assert entry is not None and entry.exec_form() == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    args = container["args"]
    model = args[args.index("--model") + 1]
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    assert any(model.startswith(m + "/") for m in mounts), f"--model {model} is not on a mounted volume"
    ports = [p["containerPort"] for p in container["ports"]]
    assert int(args[args.index("--port") + 1]) in ports


def test_every_container_the_operator_creates_finds_its_command_in_its_image() -> None:
    checked = set()
    for role, image, container in operator_containers():
        name = image_name(image)
        assert (IMAGES_DIR / name / "Dockerfile").is_file(), f"{role} runs {image}, which images/ does not build"
        df = dockerfile(name)
        command = container.get("command")
        if command is None:
            _check_vllm(df, container)
        elif command[0] in ("w4s", "w4s-operator"):
            _check_console_script(df, command)
        elif command[0] == "python":
            _check_python_module(df, command)
        elif command[0] == "accelerate":
            _check_accelerate(df, command)
        else:
            raise AssertionError(f"{role} runs {command[0]!r} in {name}; teach this test how to check it")
        checked.add((role, name))
    roles = {name for _, name in checked}
    assert roles == {"runner", "sandbox", "trainer", "meta-agent"}, roles
    assert ("Deployment/fetch-weights", "runner") in checked  # `w4s store get` runs in the runner image


def test_the_charts_operator_command_is_in_the_operator_image() -> None:
    chart = (ROOT / "charts" / "w4s" / "templates" / "deployment.yaml").read_text()
    match = re.search(r"command:\s*(\[.*\])", chart)
    assert match, "the chart's operator container sets no command"
    _check_console_script(dockerfile("operator"), json.loads(match.group(1)))


def test_sandbox_uses_the_same_worker_command_as_the_image() -> None:
    pod = sandbox_kube.sandbox_pod(name="s", namespace="n", run_name="r", image="i", cpu="1", memory="1Gi",
                                   gateway_url="http://10.0.0.1:8080")
    command = pod["spec"]["containers"][0]["command"]
    final = dockerfile("sandbox").final
    entry, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entry is not None and cmd is not None
    assert command[:len(entry.exec_form() or [])] == entry.exec_form()
    assert (entry.exec_form() or []) + (cmd.exec_form() or []) == command


def test_sandbox_image_holds_only_the_stdlib_worker() -> None:
    """Workflow code runs there: no w4s dependencies, no package tools, nothing it could use to reach out."""
    df = dockerfile("sandbox")
    sources = {s.rstrip("/") for _, srcs, _ in copy_sources(df) for s in srcs}
    assert sources == {"w4s/__init__.py", "w4s/workflow"}
    text = df.run_text()
    assert not _pip_lines(df) and "apt-get install" not in text
    for tool in ("curl", "wget", "netcat", "ncat", "socat", "ssh", "git", "busybox"):
        assert not re.search(rf"\b{tool}\b", text), f"the sandbox image mentions {tool}"
    assert "pip uninstall --yes pip" in text and "ensurepip" in text and "chmod a-s" in text
    assert expand(df.final.base, df.global_args) == "scratch"
    assert [i.rest for i in df.final.all("COPY")] == ["/ /"]
    assert "PYTHONPATH" not in df.final.env()  # `python -I` ignores it; the package sits in site-packages
    stdlib = set(sys.stdlib_module_names)
    for path in [ROOT / "w4s" / "__init__.py", *sorted((ROOT / "w4s" / "workflow").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["w4s.workflow"]
            for name in names:
                ok = name.split(".")[0] in stdlib or name == "w4s.workflow" or name.startswith("w4s.workflow.")
                assert ok, f"{path.relative_to(ROOT)} imports {name}, which the sandbox image does not hold"


def test_runner_bakes_every_pinned_benchmark_wheel() -> None:
    """The runner's root filesystem is read-only and it may have no route to a package index, so every wheel
    the benchmarks read (module-level NAME = "pkg==version" constants) is fetched at build time."""
    df = dockerfile("runner")
    text = df.run_text()
    constants = []
    for path in sorted((ROOT / "w4s" / "benchmarks").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and re.fullmatch(r"[\w.-]+==[\w.]+", node.value.value):
                constants += [(path.stem, t.id) for t in node.targets if isinstance(t, ast.Name)]
    assert constants
    for module, name in constants:
        assert f"from w4s.benchmarks.{module} import {name}" in text and name in text.split("for r in")[-1], \
            f"the runner image does not bake {module}.{name}"
    cache_dir = df.final.env().get("W4S_CACHE_DIR")
    assert cache_dir and f"W4S_CACHE_DIR={cache_dir} " in text
    assert any(i.words()[0].rstrip("/") in (cache_dir, cache_dir.rsplit("/", 1)[0])
               for i in df.final.all("COPY") if "from" in i.flags)


def test_meta_agent_image_serves_offline_as_non_root() -> None:
    df = dockerfile("meta-agent")
    env = df.final.env()
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("VLLM_NO_USAGE_STATS") == "1"
    assert expand(df.final.base, df.global_args).startswith("vllm/vllm-openai:v")
    assert env.get("HOME") and env["HOME"] in df.run_text()  # created, and owned by the image's user


# ---------------------------------------------------------------------------------------------------------------
# The accelerate configs.

# Read from accelerate 1.13.0 (accelerate/commands/config/config_args.py: BaseConfig and ClusterConfig fields;
# accelerate/commands/launch.py and utils/launch.py: the fsdp_* options it forwards). A different pin must be
# re-read: unknown top-level keys make `accelerate launch` fail, unknown fsdp_* keys are silently ignored.
ACCELERATE_CHECKED = "1.13.0"
CLUSTER_CONFIG_KEYS = {
    "compute_environment", "distributed_type", "mixed_precision", "use_cpu", "debug", "num_processes",
    "machine_rank", "num_machines", "gpu_ids", "main_process_ip", "main_process_port", "rdzv_backend",
    "same_network", "main_training_function", "enable_cpu_affinity", "fp8_config", "deepspeed_config",
    "fsdp_config", "parallelism_config", "megatron_lm_config", "mpirun_config", "downcast_bf16", "tpu_name",
    "tpu_zone", "tpu_use_cluster", "tpu_use_sudo", "command_file", "commands", "tpu_vm", "tpu_env", "dynamo_config"}
FSDP_KEYS = {
    "fsdp_version", "fsdp_sharding_strategy", "fsdp_reshard_after_forward", "fsdp_offload_params",
    "fsdp_min_num_params", "fsdp_auto_wrap_policy", "fsdp_transformer_layer_cls_to_wrap", "fsdp_backward_prefetch",
    "fsdp_state_dict_type", "fsdp_forward_prefetch", "fsdp_use_orig_params", "fsdp_cpu_ram_efficient_loading",
    "fsdp_sync_module_states", "fsdp_activation_checkpointing", "fsdp_ignored_modules"}
ACCELERATE_DIR = ROOT / "training_jobs" / "accelerate"


def _accelerate_config(name: str) -> dict[str, Any]:
    config = yaml.safe_load((ACCELERATE_DIR / f"{name}.yaml").read_text())
    unknown = set(config) - CLUSTER_CONFIG_KEYS
    assert not unknown, f"{name}.yaml: keys accelerate {ACCELERATE_CHECKED} does not know: {sorted(unknown)}"
    assert config["compute_environment"] == "LOCAL_MACHINE" and config["mixed_precision"] == "bf16"
    assert config["num_machines"] == 1 and config["use_cpu"] is False
    return config


def test_accelerate_configs_match_the_pinned_accelerate() -> None:
    assert constraints()["accelerate"] == ACCELERATE_CHECKED, \
        "accelerate's pin moved: re-read its config keys and update CLUSTER_CONFIG_KEYS / FSDP_KEYS"
    assert {p.stem for p in ACCELERATE_DIR.glob("*.yaml")} == {"single", "ddp", "fsdp"}


def test_single_gpu_config_runs_one_undistributed_process() -> None:
    config = _accelerate_config("single")
    assert config["distributed_type"] == "NO" and config["num_processes"] == 1  # "NO" quoted: not YAML false


def test_ddp_config_is_multi_gpu_and_takes_the_process_count_from_the_launcher() -> None:
    config = _accelerate_config("ddp")
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == -1


def test_fsdp_config_fully_shards_transformer_blocks_and_saves_sharded_checkpoints() -> None:
    config = _accelerate_config("fsdp")
    assert config["distributed_type"] == "FSDP" and config["num_processes"] == -1
    fsdp = config["fsdp_config"]
    assert set(fsdp) <= FSDP_KEYS, f"unknown fsdp options {sorted(set(fsdp) - FSDP_KEYS)}"
    assert fsdp["fsdp_version"] == 1 and fsdp["fsdp_reshard_after_forward"] == "FULL_SHARD"
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert fsdp["fsdp_offload_params"] is False
    # `accelerate launch` refuses cpu_ram_efficient_loading without sync_module_states.
    assert not fsdp["fsdp_cpu_ram_efficient_loading"] or fsdp["fsdp_sync_module_states"]


def test_operator_launches_configs_that_exist() -> None:
    used = set()
    for _role, _image, container in operator_containers():
        command = container.get("command") or []
        if "--config_file" in command:
            used.add(command[command.index("--config_file") + 1])
    assert used == {f"{operator_children.ACCELERATE_CONFIGS}/{name}.yaml" for name in ("single", "fsdp", "ddp")}
    for path in used:
        assert (ACCELERATE_DIR / Path(path).name).is_file()


# ---------------------------------------------------------------------------------------------------------------
# The Makefile, the chart's values and the operator's defaults agree on names.

def test_makefile_knows_every_dockerfile_and_its_digest_args() -> None:
    names = makefile_images()
    assert sorted(names) == sorted(p.parent.name for p in DOCKERFILES)
    assert makefile_vars()["REGISTRY"] == "ghcr.io/w4s-project"
    variables = makefile_vars()
    for name in names:
        df = dockerfile(name)
        digest_args = {a for a in df.global_args if a.endswith("_DIGEST")}
        assert set(variables.get(f"digest_args_{name}", "").split()) == digest_args, \
            f"Makefile digest_args_{name} must list {sorted(digest_args)}"


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("name", ["operator", "runner", "sandbox", "trainer", "meta-agent"])
def test_make_builds_each_image_with_buildx_tag_and_digest(name: str) -> None:
    digest_args = sorted(a for a in dockerfile(name).global_args if a.endswith("_DIGEST"))
    overrides = [f"{a}={FAKE_DIGEST}" for a in digest_args]
    proc = subprocess.run(["make", "-n", "--no-print-directory", f"image-{name}", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    build = [line for line in proc.stdout.splitlines() if "buildx build" in line]
    assert len(build) == 1, proc.stdout
    line = build[0]
    assert line.startswith("docker buildx build ") and line.rstrip().endswith(" .")
    assert f"-f images/{name}/Dockerfile" in line and f"-t ghcr.io/w4s-project/{name}:{VERSION}" in line
    assert f"--build-arg VERSION={VERSION}" in line and "--load" in line
    for arg in digest_args:
        assert f"--build-arg {arg}={FAKE_DIGEST}" in line
    assert "docker info" in proc.stdout  # the engine check runs first


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_refuses_a_malformed_digest_and_defaults_to_help() -> None:
    bad = subprocess.run(["make", "-n", "image-runner", "PYTHON_DIGEST=latest"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "PYTHON_DIGEST must look like sha256" in bad.stderr
    helped = subprocess.run(["make", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert helped.returncode == 0 and "make image-NAME" in helped.stdout


def test_chart_values_and_operator_defaults_name_the_makefile_images() -> None:
    vals = values()
    repos = [vals["image"]["repository"]] + [
        entry["repository"] for entry in vals["images"].values() if isinstance(entry, dict) and "repository" in entry]
    registry = makefile_vars()["REGISTRY"]
    assert sorted(image_name(r) for r in repos) == sorted(makefile_images())
    assert all(r.rsplit("/", 1)[0] == registry for r in repos)
    settings = Settings()
    for ref in (settings.runner_image, settings.sandbox_image, settings.trainer_image, settings.meta_agent_image):
        assert ref == f"{registry}/{image_name(ref)}:{VERSION}"
    chart = yaml.safe_load((ROOT / "charts" / "w4s" / "Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION  # the default TAG of `make` and of the chart's images


def test_digests_turn_push_metadata_into_chart_values(tmp_path: Path) -> None:
    digests = _load(IMAGES_DIR / "digests.py", "w4s_images_digests")
    for i, name in enumerate(makefile_images()):
        (tmp_path / f"{name}.json").write_text(json.dumps({"containerimage.digest": f"sha256:{i:064x}"}))
    pinned = digests.release_values("registry.example/w4s", tmp_path, values())
    assert pinned["image"] == {"repository": "registry.example/w4s/operator", "digest": f"sha256:{0:064x}"}
    assert pinned["images"]["metaAgent"]["repository"] == "registry.example/w4s/meta-agent"
    assert set(pinned["images"]) == {"runner", "sandbox", "trainer", "metaAgent"}
    (tmp_path / "trainer.json").unlink()
    with pytest.raises(SystemExit, match="trainer"):
        digests.release_values("registry.example/w4s", tmp_path, values())
