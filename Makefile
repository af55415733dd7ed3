# Set up a CPU virtual environment and run the demo or the tests (README: Quick start).
# torch==2.13.0 goes in first and alone: a looser torch requirement would make pip fetch a multi-GB CUDA build.
# Where the index serves the CUDA build of that very version (PyPI on Linux), set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (README: Quick start): pip then takes 2.13.0+cpu.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kosov-installed
DEMO   ?= outputs/demo

.PHONY: setup demo test tokenizer clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements/cpu.txt -e ".[dev]"
	touch $(STAMP)

# The whole pipeline on the embedded tiny-ko model, as far as it exists: LoRA SFT on Korean chat rows, then
# GRPO on Korean math prompts continuing the SFT adapter, then an evaluation of the base against the final
# adapter, then a release folder with the model card and a merged model (nothing is uploaded); all tracked
# in wandb (offline unless you have an API key).
demo: setup
	$(BIN)/kosov train experiment=smoke-sft tracking=wandb name=demo-sft \
		method.max_steps=-1 method.num_train_epochs=8 method.eval_steps=50 method.save_steps=100 \
		output_dir=$(DEMO)/sft overwrite=true
	$(BIN)/kosov train experiment=smoke-grpo tracking=wandb name=demo-grpo method.init_adapter=$(DEMO)/sft \
		method.max_steps=30 method.save_steps=30 output_dir=$(DEMO)/grpo overwrite=true
	$(BIN)/kosov eval experiment=smoke-eval tracking=wandb name=demo-eval eval.adapter=$(DEMO)/grpo \
		output_dir=$(DEMO)/eval overwrite=true
	$(BIN)/kosov publish run=$(DEMO)/grpo publish.eval_report=$(DEMO)/eval publish.merge=true \
		output_dir=$(DEMO)/release overwrite=true
	@echo "demo done: adapters in $(DEMO)/sft and $(DEMO)/grpo, report in $(DEMO)/eval/report.md," \
		"release (model card, merged model) in $(DEMO)/release"

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q

# Rebuild the committed tiny-ko tokenizer from data_tools/corpus/ko (byte-identical unless the corpus changed).
tokenizer: setup
	$(BIN)/python -m training.tiny_ko build-tokenizer

clean:
	rm -rf $(VENV) outputs
