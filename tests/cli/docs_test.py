#!/usr/bin/env python3
"""The man page and the shell completion the build generates agree with `imgdl --help`.

One scenario per CTest test (see tests/cli/CMakeLists.txt):
    docs_test.py --imgdl PATH --docs DIR SCENARIO
DIR holds what the build made from the program's option table (app/CMakeLists.txt): imgdl.1, imgdl.bash and
_imgdl. Each scenario reads --help, the one source of truth, and checks one document against it:
    man_page         groff renders imgdl.1 without a warning, and its OPTIONS list the options, placeholders
                     and descriptions --help lists, in the same order
    bash_completion  bash, with imgdl.bash sourced, completes every option --help lists; after an option, its
                     fixed values (each accepted by imgdl, also as --option=value), files after FILE and
                     directories after DIR; `merge` as the first word, and after it the options
                     `imgdl merge --help` lists and files
    zsh_completion   zsh reads _imgdl and hands _arguments a spec for every option --help lists, with a value
                     where --help shows one and the same fixed values as bash; the same for `imgdl merge`,
                     offered as the first word
Standard library only; needs bash, zsh and groff (scripts/install-deps.sh).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from testlib import CheckFailed, check  # noqa: E402

ARGS = None
# Options whose value is one of a fixed set: completion must offer their values.
OPTIONS_WITH_FIXED_VALUES = ["--on-exists", "--input-format", "--output-format", "--progress"]


def run(command, cwd=None, env=None):
    proc = subprocess.run(command, cwd=cwd, capture_output=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def help_options(subcommand=None, at_least=20):
    """[(names, value, description)] from `imgdl [subcommand] --help`'s Options section, in its order."""
    code, out, err = run([ARGS.imgdl] + ([subcommand] if subcommand else []) + ["--help"])
    check(code == 0, f"--help exited {code}", err)
    lines = out.splitlines()
    check("Options:" in lines, "--help has no 'Options:' section", out)
    options = []
    for i, line in enumerate(lines[lines.index("Options:") + 1:], start=lines.index("Options:") + 1):
        if not line.startswith("  "):
            break
        m = re.match(r"  (-[^\s,]+(?:,-[^\s,]+)*)(?: (\S+))?(?:\s{2,}(.*))?$", line)
        if not m:
            continue  # a description continued on its own line
        description = m.group(3)
        if description is None:  # a long name: CLI11 puts the description on the next line
            description = lines[i + 1].strip()
        options.append((m.group(1).split(","), m.group(2) or "", description.strip()))
    check(len(options) > at_least, "too few options parsed from --help", out)
    return options


def all_names(options):
    return [name for names, _, _ in options for name in names]


def scenario_man_page(tmp):
    page = os.path.join(ARGS.docs, "imgdl.1")
    options = help_options()
    # Rendered as man would, with every groff warning on, on lines wide enough for each tag to have its own.
    code, text, err = run(["groff", "-man", "-Tutf8", "-ww", "-rLL=200n", "-P", "-cbou", page])
    check(code == 0 and err == "", f"groff -ww reports problems in {page}", err)
    # A '-' in roff is a hyphen (U+2010 in UTF-8), which a shell does not take for '-': inside a line (not where
    # a word is broken at its end) it is an option or a value written without \-.
    hyphens = [line for line in text.splitlines() if re.search("\u2010(?!$)", line)]
    check(not hyphens, "text renders with a Unicode hyphen inside a line (write '-' as \\- in roff)", hyphens)
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "REPORT", "FILES", "EXAMPLES"]:
        check(re.search(rf"^{heading}$", text, re.M), f"the man page has no {heading} section", text)
    section = text.split("\nOPTIONS\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    tags = []
    for line in section.splitlines():
        if not re.match(r" {7}-", line):
            continue
        # A tag is a line of its own, unless it is short enough for its description to start beside it (.TP).
        tag = line[7:14].strip() if len(line) > 14 and line[13] == " " and line[14] != " " else line[7:].strip()
        *first_names, last = tag.split(", ")
        last_name, _, value = last.partition(" ")
        tags.append((first_names + [last_name], value))
    check(tags == [(names, value) for names, value, _ in options],
          "the man page's OPTIONS are not --help's options (names and placeholders, in order)",
          f"--help: {[(n, v) for n, v, _ in options]}", f"man:    {tags}")

    # The descriptions, from the roff source: the same text, but for this machine's worker count.
    roff = open(page, encoding="utf-8").read()
    roff_options = roff.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    paragraphs = roff_options.split(".TP\n")[1:]
    check(len(paragraphs) == len(options), "the OPTIONS section has one .TP per option",
          f"{len(paragraphs)} paragraphs, {len(options)} options")
    for (names, _, description), paragraph in zip(options, paragraphs):
        text_line = paragraph.split("\n")[1]
        unescaped = text_line.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
        expected = re.sub(r" = \d+,", ",", description) if "--workers" in names else description
        check(unescaped == expected, f"the man page describes {names[-1]} differently from --help",
              f"--help: {expected}", f"man:    {unescaped}")


def complete_bash(words, cwd):
    """COMPREPLY of the function `complete -p imgdl` names, for the command line `words` (the last is the word
    being completed), as bash's programmable completion would call it."""
    script = os.path.join(ARGS.docs, "imgdl.bash")
    program = r'''
source "$1"; shift
spec=$(complete -p imgdl) || exit 3
[[ $spec == *" -F "* ]] || exit 4
function=${spec#* -F }; function=${function%% *}
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
"$function" imgdl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    code, out, err = run(["bash", "--norc", "--noprofile", "-c", program, "bash", script] + words, cwd=cwd)
    check(code == 0 and err == "", f"bash completion of {words} failed ({code})", err)
    return [line for line in out.splitlines() if line]


def scenario_bash_completion(tmp):
    options = help_options()
    names = all_names(options)
    os.mkdir(os.path.join(tmp, "shards"))
    open(os.path.join(tmp, "list.txt"), "w").close()

    offered = complete_bash(["imgdl", "-"], tmp)
    check(sorted(offered) == sorted(names), "'imgdl -<Tab>' does not offer exactly --help's options",
          f"missing: {sorted(set(names) - set(offered))}", f"extra: {sorted(set(offered) - set(names))}")
    check(complete_bash(["imgdl", "--on"], tmp) == ["--on-exists"], "'imgdl --on<Tab>' is not --on-exists")
    check(complete_bash(["imgdl", "https://example.com/a.jpg", "--ver"], tmp) == ["--version"],
          "an option after a URL is not completed")

    fixed = {}
    for option_names, value, _ in options:
        if not value:
            continue
        for name in option_names:
            offered = sorted(complete_bash(["imgdl", name, ""], tmp))
            if value == "FILE":
                check(offered == ["list.txt", "shards"], f"'imgdl {name} <Tab>' does not offer the files", offered)
            elif value == "DIR":
                check(offered == ["shards"], f"'imgdl {name} <Tab>' does not offer only directories", offered)
            elif offered:
                fixed[name] = offered
    check(sorted(fixed) == sorted(OPTIONS_WITH_FIXED_VALUES), "the options with fixed values are not completed",
          f"completed: {fixed}")
    for name, values in fixed.items():
        # Each value offered is one imgdl takes: it stops only at the missing URLs, after parsing.
        for value in values:
            code, _, err = run([ARGS.imgdl, name, value])
            check(code == 2 and "no URLs" in err, f"imgdl refuses the value it completes: {name} {value}", err)
        code, _, err = run([ARGS.imgdl, name, "no-such-value"])
        check(code == 2 and name.lstrip("-") in err, f"imgdl accepts any value for {name}", err)
        # --option=value: bash splits the word at '=' (COMP_WORDBREAKS).
        check(sorted(complete_bash(["imgdl", name, "=", ""], tmp)) == values,
              f"'imgdl {name}=<Tab>' does not offer its values")
        first = values[0][:1]
        check(complete_bash(["imgdl", name, "=", first], tmp) == [v for v in values if v.startswith(first)],
              f"'imgdl {name}={first}<Tab>' does not narrow its values")
    check(complete_bash(["imgdl", "-j", ""], tmp) == [], "'imgdl -j <Tab>' offers something for a number")

    # `imgdl merge`: offered as the first word only, then its own options and the reports (files).
    check(complete_bash(["imgdl", ""], tmp) == ["merge"], "'imgdl <Tab>' does not offer merge")
    check(complete_bash(["imgdl", "me"], tmp) == ["merge"], "'imgdl me<Tab>' is not merge")
    check(complete_bash(["imgdl", "https://example.com/a.jpg", ""], tmp) == [], "merge is offered after a URL")
    merge_names = all_names(help_options("merge", at_least=2))
    offered = complete_bash(["imgdl", "merge", "-"], tmp)
    check(sorted(offered) == sorted(merge_names), "'imgdl merge -<Tab>' does not offer exactly its --help's options",
          f"missing: {sorted(set(merge_names) - set(offered))}", f"extra: {sorted(set(offered) - set(merge_names))}")
    check(complete_bash(["imgdl", "merge", "--on"], tmp) == [], "'imgdl merge' offers imgdl's own options")
    for words in (["merge", ""], ["merge", "a.json", ""], ["merge", "--report", ""], ["merge", "--report", "=", ""]):
        check(sorted(complete_bash(["imgdl"] + words, tmp)) == ["list.txt", "shards"],
              f"'imgdl {' '.join(words)}<Tab>' does not offer the files")
    check(complete_bash(["imgdl", "merge", "--sort-buffer", ""], tmp) == [],
          "'imgdl merge --sort-buffer <Tab>' offers something for a size")


def zsh_specs(script, setup=""):
    """What _imgdl hands to _arguments (or _alternative), one argument a line, after the zsh code `setup`
    (the completion context: words, CURRENT, PREFIX)."""
    # zsh itself reads the script (quoting, brace expansion); stand-ins print what they are handed.
    program = ('_arguments() { printf "%s\\n" "$@"; }; _alternative() { printf "%s\\n" "$@"; }; ' + setup +
               '; source "$1"')
    code, out, err = run(["zsh", "-f", "-c", program, "zsh", script])
    check(code == 0 and err == "", "zsh could not read _imgdl", err)
    return out.splitlines()


def check_zsh_specs(specs, options, operand, tmp, command):
    """The _arguments specs `specs` offer exactly `options` (from --help) and then `operand`."""
    check(specs[:2] == ["-s", "-S"] and specs[-1] == operand, f"unexpected _arguments flags or {operand} spec",
          specs)
    by_name = {}
    for spec in specs[2:-1]:
        m = re.fullmatch(r"(?:\(([^)]*)\))?(-[^=\[]+)=?\[((?:[^\]\\]|\\.)*)\](.*)", spec)
        check(m is not None, "an _arguments spec does not parse", spec)
        by_name[m.group(2)] = (m.group(1), m.group(4))
    names = all_names(options)
    check(sorted(by_name) == sorted(names), f"_imgdl does not complete exactly {command} --help's options",
          f"missing: {sorted(set(names) - set(by_name))}", f"extra: {sorted(set(by_name) - set(names))}")
    for option_names, value, _ in options:
        for name in option_names:
            exclusions, argument = by_name[name]
            if len(option_names) > 1:
                check(exclusions is not None and sorted(exclusions.split()) == sorted(option_names),
                      f"{name}'s spec does not exclude its other spellings", exclusions)
            if not value:
                check(argument == "", f"the flag {name} takes a value in _imgdl", argument)
                continue
            check(argument.startswith(f":{value}:"), f"{name}'s value is not described as {value}", argument)
            action = argument[len(value) + 2:]
            if value == "FILE":
                check(action == "_files", f"{name} does not complete files", action)
            elif value == "DIR":
                check(action == "_files -/", f"{name} does not complete directories", action)
            elif name in OPTIONS_WITH_FIXED_VALUES:
                bash_values = sorted(complete_bash(command.split() + [name, ""], tmp))
                check(action == "(" + " ".join(bash_values) + ")", f"zsh and bash offer different values for {name}",
                      action, bash_values)


def scenario_zsh_completion(tmp):
    script = os.path.join(ARGS.docs, "_imgdl")
    check(open(script, encoding="utf-8").readline() == "#compdef imgdl\n", "_imgdl does not start with #compdef")
    check_zsh_specs(zsh_specs(script), help_options(), "*:URL:_urls", tmp, "imgdl")
    # After `imgdl merge`, merge's options and its reports; `imgdl <Tab>` offers merge besides URLs.
    check_zsh_specs(zsh_specs(script, "words=(imgdl merge a.json ''); CURRENT=4"), help_options("merge", at_least=2),
                    "*:REPORT:_files", tmp, "imgdl merge")
    first = zsh_specs(script, "words=(imgdl ''); CURRENT=2; PREFIX=''")
    check(len(first) == 2 and first[0].startswith("subcommands:") and "((merge\\:" in first[0]
          and first[1] == "urls:URL:_urls", "'imgdl <Tab>' does not offer merge and URLs", first)
    check(zsh_specs(script, "words=(imgdl -); CURRENT=2; PREFIX=-")[:2] == ["-s", "-S"],
          "'imgdl -<Tab>' does not complete imgdl's options")


SCENARIOS = {
    "man_page": scenario_man_page,
    "bash_completion": scenario_bash_completion,
    "zsh_completion": scenario_zsh_completion,
}


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgdl", required=True)
    parser.add_argument("--docs", required=True, help="the directory of the generated imgdl.1, imgdl.bash, _imgdl")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    ARGS = parser.parse_args()
    ARGS.imgdl = os.path.abspath(ARGS.imgdl)
    ARGS.docs = os.path.abspath(ARGS.docs)
    tmp = tempfile.mkdtemp(prefix=f"imgdl-docs-{ARGS.scenario}-")
    start = time.monotonic()
    try:
        SCENARIOS[ARGS.scenario](tmp)
    except CheckFailed as e:
        print(f"FAIL {ARGS.scenario}: {e}\n(work dir kept: {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"PASS {ARGS.scenario} ({time.monotonic() - start:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
