"""Parse a JVM command line: -D properties, the main class or -jar path, the application arguments."""
from __future__ import absolute_import

import posixpath

JAVA_NAMES = ("java", "javaw", "jsvc", "jre")
# java launcher options whose value is the next argument
JAVA_VALUE_OPTS = frozenset([
    "-cp", "-classpath", "--class-path", "-p", "--module-path", "--upgrade-module-path",
    "--add-modules", "--add-opens", "--add-exports", "--add-reads", "--patch-module",
    "--limit-modules", "--enable-native-access", "--source",
])
# commons-daemon jsvc options whose value is the next argument
JSVC_VALUE_OPTS = frozenset([
    "-user", "-pidfile", "-outfile", "-errfile", "-home", "-java-home", "-jvm", "-cwd",
    "-procname", "-wait", "-umask", "-server",
])


def is_jvm(proc):
    """True when the process is a Java launcher (by exe, kernel name or argv[0])."""
    names = set()
    if proc.get("exe"):
        names.add(posixpath.basename(proc["exe"]))
    if proc.get("name"):
        names.add(proc["name"])
    cmd = proc.get("cmdline") or []
    if cmd and cmd[0]:
        names.add(posixpath.basename(cmd[0].split(" ", 1)[0]))
    return any(n in JAVA_NAMES for n in names)


def parse(argv):
    """{"props": {key: value}, "options": [...], "main": str|None, "jar": bool, "args": [...]}."""
    props, options = {}, []
    main, jar, args = None, False, []
    jsvc = bool(argv) and posixpath.basename(argv[0]) == "jsvc"
    i = 1
    n = len(argv)
    while i < n:
        arg = argv[i]
        if arg.startswith("-D") and len(arg) > 2:
            key, _, value = arg[2:].partition("=")
            props[key] = value
            options.append(arg)
        elif arg == "-jar" and i + 1 < n:
            main, jar = argv[i + 1], True
            i += 2
            break
        elif arg in ("-m", "--module") and i + 1 < n:
            main = argv[i + 1].split("/", 1)[-1]
            i += 2
            break
        elif arg in JAVA_VALUE_OPTS or (jsvc and arg in JSVC_VALUE_OPTS):
            options.extend(argv[i:i + 2])
            i += 1
        elif arg.startswith("-"):
            options.append(arg)
        else:
            main = arg
            i += 1
            break
        i += 1
    args = list(argv[i:]) if main is not None else []
    return {"props": props, "options": options, "main": main, "jar": jar, "args": args}
