"""EWC's penalty (lambda * sum F * (theta - anchor)^2) at the end of each next task, from a baselines run's own
checkpoints: `python results/baselines/ewc_penalty.py results/baselines/fsdd` (checkpoints are not committed, so
run the baselines first)."""
import sys, torch
run = sys.argv[1]
for seed in ("seed0", "seed1", "seed2"):
    d = f"{run}/ewc/{seed}/checkpoints"
    try:
        last = torch.load(f"{d}/task_04.pt", map_location="cpu", weights_only=False)
    except FileNotFoundError:
        continue
    if "strategy" not in last:
        print(seed, "checkpoint without EWC state"); continue
    ewc = last["strategy"]["ewc"]; lam = ewc["ewc_lambda"]; out = []
    for t in range(4):
        nxt = torch.load(f"{d}/task_{t + 1:02d}.pt", map_location="cpu", weights_only=False)["net"]
        pen = 0.0
        for name, imp in ewc["importances"][t].items():
            key = name[4:] if name.startswith("net.") else name
            if key in nxt:
                pen += float((imp.data * (nxt[key] - ewc["saved_params"][t][name].data).pow(2)).sum())
        out.append(lam * pen)
    print(run, seed, "lambda", lam, "penalty after tasks 1-4:", " ".join(f"{p:.4f}" for p in out))
