// The main results table: every method's mean accuracy on the held-out and in-domain tasks, its delta cosine to the
// oracle teacher and the generated adapters' condition sensitivity, with mean ± std over seeds; and the same
// accuracies per task. Reads the generator runs' RUNS/generators/*/results/heldout.json (runs without it are left
// out) and writes OUT/tables/main.md, main.tex, main-per-task.md and main-per-task.tex.
//
//   ./llgbm --help >/dev/null                     # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/main-table.fsx [RUNS] [OUT] # defaults: runs, paper
#load "Common.fsx"

open Common

let runs = loadRuns runsRoot |> finishedRuns

if runs.IsEmpty then
    fail $"{runsRoot}/generators: no run has results/heldout.json yet."

printfn "%d finished runs: %s" runs.Length (runs |> List.map _.Name |> String.concat ", ")

let results = resultsFrame runs
let sensitivity = sensitivityFrame runs

let generatorGroups = runs |> List.map _.Group |> List.distinct |> List.sort
let labels = referenceMethods @ generatorGroups
let splits = [ "held-out"; "in-domain" ]

// Per label and split: the mean over the tasks of each seed, then mean ± std over seeds.
let accuracy =
    results |> summarizeOverSeeds [ "Label"; "Split" ] [ "Task" ] "Accuracy"

let cosine =
    results |> summarizeOverSeeds [ "Label"; "Split" ] [ "Task" ] "DeltaCosine"

let ratio = sensitivity |> summarizeOverSeeds [ "Label" ] [] "Ratio"
let spread = sensitivity |> summarizeOverSeeds [ "Label" ] [] "Spread"

let seedsOf label =
    splits
    |> List.choose (fun s -> accuracy |> Map.tryFind [ label; s ])
    |> List.map _.Seeds
    |> List.fold max 0

let mainTable = {
    Caption = "Accuracy on held-out and in-domain tasks, delta cosine to the oracle teacher and condition sensitivity"
    Left = 1
    Header = [
        "method"
        "seeds"
        "held-out acc. (%)"
        "in-domain acc. (%)"
        "held-out δ-cos"
        "in-domain δ-cos"
        "sensitivity ratio"
        "relative spread"
    ]
    Rows = [
        for label in labels ->
            [
                label
                string (seedsOf label)
                meanStd percent (accuracy.TryFind [ label; "held-out" ])
                meanStd percent (accuracy.TryFind [ label; "in-domain" ])
                meanStd (fixedDigits 3) (cosine.TryFind [ label; "held-out" ])
                meanStd (fixedDigits 3) (cosine.TryFind [ label; "in-domain" ])
                meanStd (fixedDigits 2) (ratio.TryFind [ label ])
                meanStd (fixedDigits 2) (spread.TryFind [ label ])
            ]
    ]
    Notes = [
        "Accuracy: each task's accuracy is the mean over its evaluation conditions (prompt batches the adapter is "
        + "generated from); per seed the mean over the tasks, then mean ± sample standard deviation over seeds (the "
        + "mean alone for one seed). δ-cos: cosine between the adapter's delta activation and the oracle teacher's, "
        + "averaged the same way. Sensitivity (generated adapters on the held-out tasks): the mean weight-space "
        + "distance ‖ΔW_i − ΔW_j‖ between adapters generated for different tasks over that between adapters generated "
        + "for one task from different prompt batches, and the across-task distance relative to the adapters' mean "
        + "norm (about 0 for a generator that emits one adapter whatever the condition). base, oracle, mean teacher "
        + "and random adapter (the training teachers' norm per module, no task): each task's result averaged over the "
        + "runs of a seed that have it. "
        + "Generator configs are the run directories without their seed suffix."
        ""
        "Runs: "
        + (runs
           |> List.map (fun r -> $"`{r.Name}` (step {r.Evaluation.Value.Step})")
           |> String.concat ", ")
        + "."
    ]
}

// Per task: every method's accuracy (mean ± std over seeds), one table per split.
let perTask =
    results |> summarizeOverSeeds [ "Label"; "Split"; "Task" ] [] "Accuracy"

let tasksOf split =
    results.Rows.Values
    |> Seq.filter (fun r -> r.GetAs<string> "Split" = split)
    |> Seq.map (fun r -> r.GetAs<string> "Domain", r.GetAs<string> "Task")
    |> Seq.distinct
    |> Seq.sort
    |> List.ofSeq

let perTaskTable split = {
    Caption = $"Accuracy (%%) per {split} task"
    Left = 2
    Header = [ "task"; "domain"; yield! labels ]
    Rows = [
        for domain, task in tasksOf split ->
            [
                task
                domain
                yield!
                    labels
                    |> List.map (fun l -> meanStd percent (perTask.TryFind [ l; split; task ]))
            ]
    ]
    Notes = [
        "Each task's accuracy is the mean over its evaluation conditions; mean ± sample standard deviation over seeds "
        + "(the mean alone for one seed)."
    ]
}

writeTables "main" [ mainTable ]

writeTables
    "main-per-task"
    (splits
     |> List.filter (fun s -> not (tasksOf s).IsEmpty)
     |> List.map perTaskTable)
