# memccp-py: developer tasks. Everything runs with Debian's /usr/bin/python3.
PYTHON  ?= /usr/bin/python3
VERSION := $(shell $(PYTHON) -c 'import memccp_py; print(memccp_py.__version__)')
DEB     := out/memccp-py_$(VERSION)_all.deb
# Debian's tools (pybuild runs "python3.11") must find Debian's interpreters,
# not a python3 from pyenv, a venv or /usr/local earlier on PATH.
DEBPATH := env PATH=/usr/sbin:/usr/bin:/sbin:/bin

.PHONY: all test man deb lintian install uninstall e2e divert-test pypi-test stdeb autopkgtest \
        repro suite-check bench demo check clean mutants

all: test

test:                      ## unit and integration tests against real memcached servers
	$(PYTHON) -m pytest -q tests --ignore=tests/e2e

man:                       ## draft a page from the parser (argparse-manpage) to compare with man/memccp.1
	mkdir -p build
	COLUMNS=80 PYTHONPATH=. argparse-manpage --module memccp_py.cli --function build_parser \
	    --output build/memccp.1.draft
	@echo "man/memccp.1 is maintained by hand; tests/test_manpage.py checks it against the parser"

deb: $(DEB)                ## build the .deb; also ./memccp-py.deb for "apt install ./memccp-py.deb"
	@cmp -s $(DEB) memccp-py.deb || cp $(DEB) memccp-py.deb

$(DEB): $(shell git ls-files 2>/dev/null)
	$(DEBPATH) dpkg-buildpackage -us -uc -b
	mkdir -p out
	mv ../memccp-py_$(VERSION)_all.deb ../memccp-py_$(VERSION)_*.changes \
	   ../memccp-py_$(VERSION)_*.buildinfo out/
	cp $(DEB) memccp-py.deb

lintian: $(DEB)            ## lintian on the .deb and .changes (as an unprivileged user)
	sh tools/lintian-check out

install: $(DEB)            ## install the built package with apt
	apt-get install -y --reinstall --allow-downgrades ./$(DEB)

uninstall:
	apt-get purge -y memccp-py

e2e: install               ## end-to-end tests of the installed package with nginx
	MEMCCP_E2E=installed $(PYTHON) -m pytest -q -rs tests/e2e

divert-test: $(DEB)        ## install/remove/purge beside libmemcached-tools' memccp
	sh tools/divert-test $(DEB)

pypi-test:                 ## pip install . into a venv (PyPI's bmemcached) and run the tests
	sh tools/pypi-test

stdeb:                     ## the alternative route: stdeb's bdist_deb
	sh tools/stdeb-build

autopkgtest: $(DEB)        ## the package's autopkgtest, on this machine
	autopkgtest -B $(DEB) . -- null

repro:                     ## build twice (other path, umask, locale, clock): the same .deb
	$(DEBPATH) sh tools/repro-check

SUITE ?= trixie
suite-check:               ## build, lint, autopkgtest, divert, repro and upgrade tests in a SUITE chroot
	$(DEBPATH) sh tools/suite-check $(SUITE)

mutants:                   ## apply behaviour-changing mutations to a copy; the unit suite must fail each
	$(PYTHON) tools/mutants

bench:                     ## benchmarks: each prints its goals, NOT MET ones fail the target
	status=0; for b in load many loop bulk; do $(PYTHON) bench/bench_$$b.py || status=1; done; \
	exit $$status

demo: install              ## main job end to end: build+install the .deb, copy and read back
	sh tools/demo

check: test deb lintian e2e autopkgtest divert-test repro stdeb pypi-test suite-check  ## everything CI runs
	@echo "make check: all passed"

clean:
	rm -rf out build .pybuild deb_dist dist *.egg-info .pytest_cache memccp-py.deb
	-dh_clean 2>/dev/null
