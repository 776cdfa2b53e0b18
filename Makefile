# The two commands of the README. Both install what is missing first (hack/setup.sh).
.PHONY: setup demo test unit crds bench

setup:
	bash hack/setup.sh

demo: setup
	python3 -m vigil demo --fast

test: setup
	python3 -m pytest -q -p no:cacheprovider

unit:
	python3 -m pytest -q -p no:cacheprovider tests/unit

crds:
	python3 -m vigil.api.crdgen

bench:
	python3 bench/analysis_bench.py
