# The two commands of the README. Both install what is missing first (hack/setup.sh).
.PHONY: setup demo test unit crds bench image manifests docs killpoints fuzz

setup:
	bash hack/setup.sh

demo: setup
	python3 -m vigil demo --fast

# Test modules run on parallel workers (one per core, at most 4): the integration tests spend
# half their time waiting on the servers they start, and each worker starts its own. The unit
# tests run while the control plane builds (hack/test.sh says how).
test:
	bash hack/test.sh

unit:
	python3 -m pytest -q -p no:cacheprovider tests/unit

# the CRDs from the pydantic models, then what is generated from them (plain manifests, references)
crds:
	python3 -m vigil.api.crdgen
	python3 hack/render-manifests.py
	python3 -m vigil.api.docgen

bench:
	python3 bench/analysis_bench.py

# The operator image, tagged with the package version (the chart's default tag).
IMAGE ?= ghcr.io/vigil-dev/vigil-operator
VERSION = $(shell python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image:
	@builder=""; for b in docker podman buildah; do \
	  if command -v $$b >/dev/null 2>&1 && $$b info >/dev/null 2>&1; then builder=$$b; break; fi; done; \
	if [ -z "$$builder" ]; then \
	  echo "make image: no working container builder (docker or podman with a running daemon, or buildah); see docs/install.md" >&2; \
	  exit 1; fi; \
	if [ "$$builder" = buildah ]; then cmd="buildah bud"; else cmd="$$builder build"; fi; \
	echo "$$cmd -t $(IMAGE):$(VERSION) ."; $$cmd -t $(IMAGE):$(VERSION) .

# manifests/install: the chart rendered for `kubectl apply -k` (tests check it is current)
manifests:
	python3 hack/render-manifests.py

# docs/reference: generated from the pydantic models (tests check they are current)
docs:
	python3 -m vigil.api.docgen

# Long sweeps outside the test command (CI runs a sample of the same harnesses):
# every write of real rollouts killed before and after it (tests/killpoints.py) ...
killpoints: setup
	python3 -m tests.killpoints

# ... and 4000 hypothesis cases per fuzz property and 500 batches of windows, 12,500 in all (tests/unit/test_fuzz.py).
# A property of 4000 cases takes 2 to 10 minutes with the host's speed: the hang guard is an hour here.
fuzz: setup
	VIGIL_FUZZ_EXAMPLES=4000 python3 -m pytest -q -p no:cacheprovider --timeout 3600 tests/unit/test_fuzz.py
