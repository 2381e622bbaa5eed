"""Read a systemd unit and an EnvironmentFile, and expand an ExecStart= line as
systemd does (systemd.service(5), "Command lines"), for running a unit's command
in a test without systemd."""

import re
import shlex
from typing import Dict, List


def unit_settings(path) -> Dict[str, List[str]]:
    """Every ``Key=value`` of the unit file as {"Section.Key": [values in order]}."""
    settings: Dict[str, List[str]] = {}
    section = ""
    with open(path, encoding="utf-8") as unit:
        for line in unit:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def environment_assignments(text: str) -> Dict[str, str]:
    """``Environment=A=1 B="two words"`` -> {"A": "1", "B": "two words"}."""
    return dict(word.split("=", 1) for word in shlex.split(text))


def environment_file(path) -> Dict[str, str]:
    """NAME=value lines of an EnvironmentFile= (comments and blank lines ignored,
    one level of surrounding quotes removed)."""
    values = {}
    with open(path, encoding="utf-8") as env:
        for line in env:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            name, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name.strip()] = value
    return values


def expand_command(line: str, env: Dict[str, str]) -> List[str]:
    """The argv of an ExecStart= *line*: ``${NAME}`` becomes the value as (part of) one
    word, a word that is just ``$NAME`` becomes the value split at whitespace."""
    argv: List[str] = []
    for word in shlex.split(line):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(env.get(whole.group(1), "").split())
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                               lambda m: env.get(m.group(1), ""), word))
    return argv


def unit_command(unit_path, conf_path) -> List[str]:
    """The argv ExecStart= of *unit_path* runs with the environment it sets up from
    Environment= and then *conf_path* (the EnvironmentFile=, which wins)."""
    settings = unit_settings(unit_path)
    env: Dict[str, str] = {}
    for text in settings.get("Service.Environment", []):
        env.update(environment_assignments(text))
    env.update(environment_file(conf_path))
    (line,) = settings["Service.ExecStart"]
    return expand_command(line, env)
