"""Package discovery lives here because pyproject.toml cannot combine `find` with a mapped directory:
the top-level rules/ directory ships inside the wheel as the data package `scanner._rules`
(found by scanner.paths.rules_dir). All metadata is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["scanner", "scanner.*"]) + ["scanner._rules"],
    package_dir={"scanner._rules": "rules"},
)
