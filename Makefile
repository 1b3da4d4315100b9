# kmm-course: every target sets up what it needs (a virtual environment in .venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kmm-installed

.PHONY: lab test test-browser bench lint execute release html clean

$(STAMP): pyproject.toml setup.py kmmlib/trace/_ftrace.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,test]'
	@touch $(STAMP)

## lab: open the course in JupyterLab, on the welcome chapter
# LAB_ARGS adds options (the tests start it headless: --no-browser --port=…); as root, Jupyter
# needs --allow-root.
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb $(LAB_ARGS)

## test: unit tests, then nbval over every chapter and exercise solution
test: $(STAMP)
	$(BIN)/python -m pytest -m "not browser" tests
	$(BIN)/python -m pytest --nbval notebooks/ exercises/solutions/

## test-browser: every chapter in JupyterLab in headless Chromium (needs a chromium binary;
## they skip with the reason when there is none). Screenshots go to tests/artifacts/.
BROWSER_STAMP := $(VENV)/.kmm-browser-installed
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[course,test,browser]'
	@touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	$(BIN)/python -m pytest -m browser -rs tests/browser

## bench: the speed and memory table
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## lint: ruff over the code and the notebooks
lint: $(STAMP)
	$(BIN)/ruff check .

## execute: re-run every chapter and exercise solution in place (after editing one), with
## Jupyter's own inline plots, then regenerate the student exercises
execute: $(STAMP)
	@for nb in notebooks/[0-9][0-9]_*.ipynb exercises/solutions/*.ipynb; do \
	  echo "executing $$nb"; \
	  env -u MPLBACKEND $(BIN)/jupyter nbconvert --log-level=WARN --to notebook --execute \
	    --inplace "$$nb" || exit 1; \
	done
	$(BIN)/kmm exercises release

## release: regenerate the student exercises from exercises/solutions/
release: $(STAMP)
	$(BIN)/kmm exercises release

## html: a static HTML page per chapter in build/html/, widgets in their last state. The widget
## renderer and require.js come from the npm registry (a page that loads them from a CDN shows
## blank widgets offline).
HTML_JS := build/html/js
$(HTML_JS)/embed-amd.js:
	@mkdir -p $(HTML_JS)/pack
	cd $(HTML_JS)/pack && npm pack --silent @jupyter-widgets/html-manager@1 requirejs@2 >/dev/null
	cd $(HTML_JS)/pack && for t in *.tgz; do mkdir -p "$${t%.tgz}" && tar xzf "$$t" -C "$${t%.tgz}"; done
	cp $(HTML_JS)/pack/requirejs-*/package/require.js $(HTML_JS)/
	cp $(HTML_JS)/pack/jupyter-widgets-html-manager-*/package/dist/*.js $(HTML_JS)/
	rm -rf $(HTML_JS)/pack

html: $(STAMP) $(HTML_JS)/embed-amd.js
	@for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  env -u MPLBACKEND $(BIN)/jupyter nbconvert --log-level=WARN --to html --execute \
	    --output-dir build/html --HTMLExporter.require_js_url=js/require.js \
	    --HTMLExporter.widget_renderer_url=js/embed-amd.js "$$nb" || exit 1; \
	done
	@echo "open build/html/00_welcome.html"

clean:
	rm -rf $(VENV) build *.egg-info
