# demo.mk — the RLHF demo on the toy world: `make demo` (runs/demo/) and `make demo-quick` (runs/demo-quick/).
# Included by the Makefile. docs/demo.md explains each stage and how to read the report.
#
# The pipeline (Llama 2 §3, DESIGN §3), one file target per stage so that an interrupted demo continues
# where it stopped and a second `make demo` does nothing. A command that writes rows into prefs.db is the
# only one of its target (data.done excepted: it starts the store afresh): it writes them all or nothing
# (docs/store.md), and its stamp is touched in the same shell line (STORE_STAMPS below), so that a rerun
# never repeats it and stores its rows twice. The trainers resume (--resume).
#
#   corpus.txt, tok.bin        toyworld corpus -> tokenizer_train (BPE)
#   base/done                  sft --pretrain on the corpus
#   data.done                  prefs.db: demonstrations, train prompts, held-out test prompts; GAtt dialogues
#   v0/done                    sft on the demonstrations (V0, the SFT model)
#   vN/answers_train.done      generate rate_k answers per train prompt with V(N-1) into the store
#   vN/answers_test.done       the same on test prompts
#   vN/annotated.done          prefs_db annotate: `toyworld rate` compares every two answers of a prompt
#   vN/red_team_adversarial.done, vN/red_team_borderline.done
#                              (from V2 on) answers to adversarial, then borderline train prompts
#   vN/red_team.done           their pairs rated
#   vN/rm_helpfulness/done     rm_train: V1 from V0 on its comparisons; later from V(N-1)'s RM (rm_continue)
#                              on every comparison so far (rm_data); rm_train eval on every test comparison (Table 8,
#                              and per prompt category)
#   vN/rm_safety/done
#   vN/gatt.done               (from V3 on) gatt_augment synth: GAtt examples sampled from V(N-1)
#   vN/rs_sample.done          rejection_sample best-of-K (pooled over iterations): responses, scores, kept examples
#   vN/rs_oracle.jsonl         toyworld score: the oracle's verdict on every candidate, for the report
#   vN/rs_red_team.done        rejection_sample again on the store's first rs_red_team adversarial train
#                              prompts (Llama 2's safety RLHF samples adversarial prompts): more kept refusals
#   vN/rs.done                 sft on the kept examples (and GAtt's) -> vN/rs/ckpt
#   vN/done                    (V5) ppo on top of vN/rs/ckpt -> vN/ppo/ckpt; the policy of VN
#   vN/eval.done               scripts/demo/eval.sh: held-out prompts judged by the oracle and the RMs
#   vN/eval_rs.done            (with PPO) the same for vN/rs/ckpt, PPO's starting point
#   report.md                  scripts/report.sh: tables and gnuplot PNGs, from prefs.db and the TSVs
#
# Every setting is in configs/$(DEMO)/: demo.yaml (pipeline sizes, read here), vN.yaml (what changes
# per iteration) and one file per program (pretrain, sft, generate, rm, rs, rs_sft, gatt, ppo). A recipe
# line is a plain shell command: copy it, replace $(B) by build/bin and $(D) by runs/demo.

DEMO         ?= demo
DEMO_THREADS ?= 2
D  = runs/$(DEMO)
C  = configs/$(DEMO)
B  = $(BUILD)/bin
DB = $(D)/prefs.db
T  = --threads $(DEMO_THREADS)
# The demo's world (configs/DEMO/toyworld.yaml: which prompts it asks, how large its numbers are).
W  = --config $(C)/toyworld.yaml

.PHONY: demo demo-quick demo-run demo-deps demo-clean

# $(call knob,NAME[,V]): a flat "NAME: value" line of $(C)/v<V>.yaml, else of $(C)/demo.yaml.
knob_in = $(shell sed -n 's/^$(1):[[:space:]]*\([^[:space:]#]*\).*/\1/p' $(2) 2>/dev/null)
knob = $(strip $(or $(if $(2),$(call knob_in,$(1),$(C)/v$(2).yaml)),$(call knob_in,$(1),$(C)/demo.yaml)))
# The policy that version V ends with: PPO's when that iteration runs PPO, else the rejection-sampling fine-tune.
policy = $(if $(filter 0,$(1)),$(D)/v0/ckpt,$(if $(filter-out 0,$(call knob,ppo_iterations,$(1))),$(D)/v$(1)/ppo/ckpt,$(D)/v$(1)/rs/ckpt))
# Where reward model KIND of iteration V starts, and what it trains on: with rm_continue (from V2 on),
# from V-1's reward model, else from the current policy; with rm_data: all (as Llama 2) on every
# comparison so far, with rm_data: new on V's new comparisons only (cheaper; the models forget what
# earlier iterations taught them). $(call rm_from,V,V-1,KIND)
rm_from = $(if $(and $(filter-out 1,$(1)),$(filter-out 0,$(call knob,rm_continue,$(1)))),--init $(D)/v$(2)/rm_$(3)/ckpt,--init $(call policy,$(2)))$(if $(filter new,$(call knob,rm_data,$(1))), --set data.iteration=$(1))
# Which prompts are answered and rated in iteration V (rate_prompts): the store's first
# rate_train_prompts train and rate_test_prompts test prompts (the same ones every iteration), or a fresh
# draw from the world per iteration and split (train: seed 10V, test: seed 20V; its first N distinct
# prompts, which generate adds to the store), new prompts every iteration as Llama 2 collected them, and
# held-out comparisons on as many distinct test prompts as the world has.
# $(call rate_prompts,V,SPLIT,SEED,N): a pipe into generate's stdin, or nothing; $(call rate_stdin,V): " -" or nothing.
rate_prompts = $(if $(filter fresh,$(call knob,rate_prompts,$(1))),$(B)/toyworld prompts $(W) --split $(2) --seed $(3) --n $(shell echo $$((2 * $(4)))) | awk '!seen[$$$$0]++' | head -n $(4) | )
rate_stdin = $(if $(filter fresh,$(call knob,rate_prompts,$(1))), -)
# $(call rs,V,V-1,SEED,ARGS): rejection_sample's best of rs_k from V-1's policy by V's reward models, as
# iteration V, pooled as rs_pool says; ARGS choose the prompts (data.*) and the outputs.
rs = $(B)/rejection_sample --config $(C)/rs.yaml --model $(call policy,$(2)) --rm-helpfulness $(D)/v$(1)/rm_helpfulness/ckpt --rm-safety $(D)/v$(1)/rm_safety/ckpt --db $(DB) --iteration $(1) --seed $(3) -K $(call knob,rs_k,$(1)) --temperatures $(call knob,rs_temperatures,$(1)) --pool $(call knob,rs_pool,$(1)) $(4) $(T)
# sft/rm_train/ppo continue an interrupted run from its last checkpoint.
resume = $(if $(wildcard $(1)/ckpt/trainer_state.json),--resume)
# $(call answers,V,V-1,DATA): generate's rate_k answers per prompt from V-1's policy into the store, as
# iteration V; DATA selects the prompts (--set data.*).
answers = $(B)/generate --config $(C)/generate.yaml --model $(call policy,$(2)) --db $(DB) --emit store --iteration $(1) --seed $(1) -K $(call knob,rate_k,$(1)) --set sample.temperature=$(call knob,sample_temperature,$(1)) $(3) $(T)

demo-deps:
	@sh scripts/install-deps.sh

demo: demo-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory DEMO=demo demo-run

demo-quick: demo-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory DEMO=demo-quick demo-run
	sh scripts/check_report.sh runs/demo-quick

demo-run: $(D)/report.md

demo-clean:
	rm -rf runs/demo runs/demo-quick

# ---- the toy world, a tokenizer and a pretrained base model ---------------------------------------------
$(D)/corpus.txt:
	@mkdir -p $(D)
	$(B)/toyworld corpus $(W) --tokens $(call knob,corpus_tokens) > $@.tmp && mv $@.tmp $@

$(D)/tok.bin: $(D)/corpus.txt
	$(B)/tokenizer_train --vocab $(call knob,vocab) --out $@ $<

$(D)/base/done: $(D)/tok.bin
	$(B)/sft --pretrain --config $(C)/pretrain.yaml --tokenizer $(D)/tok.bin $(T) --out $(D)/base $(call resume,$(D)/base) $(D)/corpus.txt
	touch $@

# ---- the store: demonstrations, prompts to sample (train) and held-out prompts (test) ---------------------
$(D)/data.done: $(D)/corpus.txt
	rm -f $(DB) $(DB)-wal $(DB)-shm
	$(B)/prefs_db --db $(DB) init
	$(B)/toyworld demos $(W) --n $(call knob,demos) | $(B)/prefs_db --db $(DB) import -
	$(B)/toyworld prompts $(W) --n $(call knob,train_prompts) --split train | $(B)/prefs_db --db $(DB) import -
	$(B)/toyworld prompts $(W) --n $(call knob,test_prompts) --split test --seed 2 > $(D)/test_prompts.jsonl
	$(B)/prefs_db --db $(DB) import $(D)/test_prompts.jsonl
	$(B)/toyworld prompts $(W) --n 4000 --seed 3 --set prompts.max_turns=4 | grep '"category":"system"' | head -n $(call knob,gatt_train_dialogues) > $(D)/gatt_train.jsonl
	$(B)/toyworld prompts $(W) --n 4000 --split test --seed 4 --set prompts.max_turns=4 | grep '"category":"system"' | head -n $(call knob,gatt_eval_dialogues) > $(D)/gatt_test.jsonl
	touch $@

# ---- V0: supervised fine-tuning on the demonstrations ---------------------------------------------------
$(D)/v0/done: $(D)/base/done $(D)/data.done
	$(B)/sft --config $(C)/sft.yaml --init $(D)/base/ckpt --db $(DB) --iteration 0 $(T) --out $(D)/v0 $(call resume,$(D)/v0)
	touch $@

# ---- V1..V5 --------------------------------------------------------------------------------------------
# $(call iteration,V,V-1)
define iteration
$(D)/v$(1)/answers_train.done: $(D)/v$(2)/done
	@mkdir -p $(D)/v$(1)
	$(call rate_prompts,$(1),train,10$(1),$(call knob,rate_train_prompts,$(1)))$(call answers,$(1),$(2),--set data.split=train --set data.limit=$(call knob,rate_train_prompts,$(1)))$(call rate_stdin,$(1)) && touch $$@

$(D)/v$(1)/answers_test.done: $(D)/v$(1)/answers_train.done
	$(call rate_prompts,$(1),test,20$(1),$(call knob,rate_test_prompts,$(1)))$(call answers,$(1),$(2),--set data.split=test --set data.limit=$(call knob,rate_test_prompts,$(1)))$(call rate_stdin,$(1)) && touch $$@

$(D)/v$(1)/annotated.done: $(D)/v$(1)/answers_test.done
	$(B)/prefs_db --db $(DB) annotate --iteration $(1) --rater "$(B)/toyworld rate $(W) --seed $(1)" > $(D)/v$(1)/annotate.txt && touch $$@

# Red teaming (Llama 2 §4.2-4.3): extra pairs on adversarial and borderline prompts, where safety and
# false refusals are decided; without them most safety pairs are two safe answers rated "unsure".
$(D)/v$(1)/red_team_adversarial.done: $(D)/v$(1)/annotated.done
$(D)/v$(1)/red_team_borderline.done: $(D)/v$(1)/red_team_adversarial.done
$(D)/v$(1)/red_team_adversarial.done $(D)/v$(1)/red_team_borderline.done: $(D)/v$(1)/red_team_%.done:
	$(if $(filter-out 0,$(call knob,red_team_prompts,$(1))),$(call answers,$(1),$(2),--set data.split=train --set data.risk=$$* --set data.limit=$(call knob,red_team_prompts,$(1))) && touch $$@,@touch $$@)

$(D)/v$(1)/red_team.done: $(D)/v$(1)/red_team_borderline.done
	$(if $(filter-out 0,$(call knob,red_team_prompts,$(1))),$(B)/prefs_db --db $(DB) annotate --iteration $(1) --rater "$(B)/toyworld rate $(W) --seed $(1)" > $(D)/v$(1)/red_team.txt && touch $$@,@echo "v$(1): no red teaming in this iteration" && touch $$@)

$(D)/v$(1)/rm_%/done: $(D)/v$(1)/annotated.done | $(D)/v$(1)/red_team.done
	$(B)/rm_train train --kind $$* --config $(C)/rm.yaml $(call rm_from,$(1),$(2),$$*) --set train.epochs=$(call knob,rm_epochs,$(1)) --db $(DB) --iteration $(1) $(T) --out $(D)/v$(1)/rm_$$* $$(call resume,$(D)/v$(1)/rm_$$*)
	$(B)/rm_train eval --model $(D)/v$(1)/rm_$$*/ckpt --kind $$* --by category --config $(C)/rm.yaml --db $(DB) --iteration $(1) $(T) > $(D)/v$(1)/rm_$$*/eval.txt
	touch $$@

$(D)/v$(1)/gatt.done: $(D)/v$(2)/done
	@mkdir -p $(D)/v$(1)
	$(if $(filter-out 0,$(call knob,gatt_dialogues,$(1))),head -n $(call knob,gatt_dialogues,$(1)) $(D)/gatt_train.jsonl | $(B)/gatt_augment synth --config $(C)/gatt.yaml --model $(call policy,$(2)) --db $(DB) --emit store --iteration $(1) --seed $(1) $(T) - && touch $$@,@echo "v$(1): no GAtt in this iteration" && touch $$@)

$(D)/v$(1)/rs_sample.done: $(D)/v$(1)/rm_helpfulness/done $(D)/v$(1)/rm_safety/done $(D)/v$(1)/gatt.done
	$(call rs,$(1),$(2),$(1),--out $(D)/v$(1)/rs_sample --candidates $(D)/v$(1)/rs_candidates.jsonl) > $(D)/v$(1)/best_of_n.txt && touch $$@

$(D)/v$(1)/rs_oracle.jsonl: $(D)/v$(1)/rs_sample.done
	$(B)/toyworld score $(W) $(D)/v$(1)/rs_candidates.jsonl > $$@.tmp && mv $$@.tmp $$@

# Safety RLHF's rejection sampling: best of rs_k by the safety score on the first rs_red_team adversarial
# train prompts (with the first call's own adversarial prompts among them, which so count twice).
$(D)/v$(1)/rs_red_team.done: $(D)/v$(1)/rs_oracle.jsonl
	$(if $(filter-out 0,$(call knob,rs_red_team,$(1))),$(call rs,$(1),$(2),5$(1),--set data.risk=adversarial --set data.limit=$(call knob,rs_red_team,$(1)) --out $(D)/v$(1)/rs_red_team) > $(D)/v$(1)/rs_red_team.txt && touch $$@,@touch $$@)

$(D)/v$(1)/rs.done: $(D)/v$(1)/rs_sample.done $(D)/v$(1)/rs_oracle.jsonl $(D)/v$(1)/rs_red_team.done
	$(B)/sft --config $(C)/rs_sft.yaml --init $(call policy,$(2)) --db $(DB) --iteration $(1) --set data.iteration=$(1) --set train.steps=$(call knob,rs_sft_steps,$(1)) $(T) --out $(D)/v$(1)/rs $$(call resume,$(D)/v$(1)/rs)
	touch $$@

$(D)/v$(1)/done: $(D)/v$(1)/rs.done
	$(if $(filter-out 0,$(call knob,ppo_iterations,$(1))),$(B)/ppo --config $(C)/ppo.yaml --init $(D)/v$(1)/rs/ckpt --rm-helpfulness $(D)/v$(1)/rm_helpfulness/ckpt --rm-safety $(D)/v$(1)/rm_safety/ckpt --db $(DB) --iteration $(1) --set train.iterations=$(call knob,ppo_iterations,$(1)) $(T) --out $(D)/v$(1)/ppo $$(call resume,$(D)/v$(1)/ppo),@echo "v$(1): no PPO in this iteration")
	touch $$@

# PPO's starting point (the rejection-sampling model), evaluated the same way: the report compares the two.
$(D)/v$(1)/eval_rs.done: $(D)/v$(1)/done $(D)/v0/eval.done
	$(if $(filter-out 0,$(call knob,ppo_iterations,$(1))),EVAL_TAG=rs sh scripts/demo/eval.sh $(DEMO) $(1) $(D)/v$(1)/rs/ckpt $(D)/v$(1)/rm_helpfulness/ckpt $(D)/v$(1)/rm_safety/ckpt,@echo "v$(1): no PPO in this iteration")
	touch $$@

$(D)/v$(1)/eval.done: $(D)/v$(1)/done $(D)/v0/eval.done
	sh scripts/demo/eval.sh $(DEMO) $(1) $(call policy,$(1)) $(D)/v$(1)/rm_helpfulness/ckpt $(D)/v$(1)/rm_safety/ckpt
	touch $$@
endef
# Instantiated only when a demo target (or a file of the run directory) is asked for, so that other builds
# do not read the demo's configs.
ifneq ($(filter demo% runs/% $(D)/%,$(MAKECMDGOALS)),)
# The stages whose command writes into the store: `COMMAND && touch STAMP` in one line, run by
# scripts/demo/store_shell.sh, so that the rows and the stamp go together when make is stopped: a TERM,
# HUP or INT stops the whole line before the command commits, and a make killed outright leaves the
# line to finish and stamp (kept then: .PRECIOUS).
STORE_STAMPS = $(foreach v,1 2 3 4 5,$(foreach s,answers_train answers_test annotated red_team_adversarial red_team_borderline red_team gatt rs_sample rs_red_team,$(D)/v$(v)/$(s).done))
.PRECIOUS: $(STORE_STAMPS)
$(STORE_STAMPS): private .SHELLFLAGS = scripts/demo/store_shell.sh -c
# Stamps that an earlier demo.mk did not write (before the split of these stages, or before rs_red_team):
# a missing one is not remade while
# the stage after it is up to date, so a run finished (or stopped later) under the old file goes on
# without generating or sampling again into its store.
.SECONDARY: $(foreach v,1 2 3 4 5,$(foreach s,answers_train answers_test red_team_adversarial red_team_borderline rs_sample rs_red_team,$(D)/v$(v)/$(s).done))
# OpenMP threads that spin while they wait make every parallel region as slow as the slowest core: on a
# busy machine, decoding with 2 spinning threads was 50-200x slower than with threads that sleep.
export OMP_WAIT_POLICY ?= passive
$(foreach v,1 2 3 4 5,$(eval $(call iteration,$(v),$(word $(v),0 1 2 3 4))))
endif

# V0 is evaluated like the others; its win rate against itself is 50% by construction.
$(D)/v0/eval.done: $(D)/v0/done
	sh scripts/demo/eval.sh $(DEMO) 0 $(D)/v0/ckpt
	touch $@

# ---- the report ---------------------------------------------------------------------------------------
$(D)/gatt_eval.done: $(D)/v5/done
	$(B)/gatt_augment eval --config $(C)/gatt.yaml $(foreach v,0 1 2 3 4 5,--model $(call policy,$(v)) --label v$(v)) --db $(DB) --iteration 5 $(T) --out $(D)/gatt_eval $(D)/gatt_test.jsonl > $(D)/gatt_eval.txt
	touch $@

$(D)/report.md: $(foreach v,0 1 2 3 4 5,$(D)/v$(v)/eval.done) $(foreach v,1 2 3 4 5,$(D)/v$(v)/eval_rs.done) $(D)/gatt_eval.done scripts/report.sh
	sh scripts/report.sh $(D) > $@.tmp && mv $@.tmp $@
	@echo "report: $@"
