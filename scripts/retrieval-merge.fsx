// The B2 baseline composed from the behavioural algebra: for a held-out task, predict δ̂ from prompt batches by
// nearest-condition lookup, retrieve the nearest teachers by delta, merge them (average vs TIES) and evaluate.
// Reads run directories (base-tiny, suite, teachers, deltas from `llgbm deltas compute`) and writes a Markdown table.
//
//   ./llgbm --help >/dev/null                         # builds the assemblies loaded below (once)
//   dotnet fsi scripts/retrieval-merge.fsx [RUNS] [TASK] [OUT.md]
//
// Defaults: RUNS = runs, TASK = reverse, OUT = paper/retrieval-merge-TASK.md.
#load "Library.fsx"

open System.IO
open LLGBM.Algebra
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Evaluation
open LLGBM.Tasks

let arg i fallback =
    match fsi.CommandLineArgs |> Array.tryItem i with
    | Some a -> a
    | None -> fallback

let layout =
    LLGBM.Experiments.RunsLayout(arg 1 LLGBM.Experiments.RunsLayout.DefaultRoot)

let task = arg 2 "reverse"
let output = arg 3 (Path.Combine("paper", $"retrieval-merge-{task}.md"))

// The pool: every cached teacher delta but the held-out task's.
let pool =
    DeltaCache.Load(layout.Deltas, layout.Base, ProbeSet.Generic(), DeltaSpec.Default)
    |> RetrieveMerge.poolOf layout.Teachers
    |> Array.filter (fun p -> p.Task <> task)

let suite =
    TaskSuite.LoadAll(layout.Suite) |> Seq.map (fun t -> t.Spec.Name, t) |> dict

// δ̂ = the delta of the nearest training condition (a prompt batch with answers) under the n-gram embedding.
let library =
    pool
    |> Array.groupBy (fun p -> p.Task)
    |> Array.map (fun (name, teachers) -> suite[name], Compose.mean [ for t in teachers -> t.Delta ])
    |> NearestCondition.libraryOfTasks NearestCondition.defaultEmbedding 8 4 0L PromptBatchMode.PromptsWithAnswers

let predict =
    RetrieveMerge.nearestConditionPredictor NearestCondition.defaultEmbedding library

let model = Qwen2Checkpoint.Load(layout.Base)
let tokenizer = LLGBM.Text.Tokenizers.Load(layout.Base)

let evaluate =
    LLGBM.Experiments.RetrieveMergeExperiment.Evaluator(model, tokenizer, suite[task], EvaluationOptions(Limit = 100))

let teachers = new LLGBM.Experiments.TeacherVectors(model.Config)

let conditions =
    PromptBatches.SampleMany(suite[task], 8, 3, 1L, PromptBatchMode.PromptsWithAnswers)

let summary =
    RetrieveMerge.overConditions predict teachers.Load evaluate RetrieveMerge.Settings.Default pool task conditions

// How much the retrieved teachers disagree in sign (TIES's motivation), per condition.
let conflicts = [
    for o in summary.Outcomes -> Metrics.signConflictRate [ for h in o.Retrieved -> teachers.Load h.Item ]
]

let tasks = pool |> Array.distinctBy (fun p -> p.Task) |> Array.length

let lines = [
    yield $"# Retrieve-merge (B2) on {task}"
    yield ""
    yield
        $"Pool: {pool.Length} teacher adapters of {tasks} tasks; k = 3, one per task; 3 conditions of 8 prompts with answers."
    yield ""
    yield "| condition | δ̂ from | retrieved | sign conflicts | average | TIES |"
    yield "|---|---|---|---|---|---|"
    for i, o in List.indexed summary.Outcomes ->
        let retrieved =
            o.Retrieved
            |> List.map (fun h -> $"{h.Item} ({h.Score:F3})")
            |> String.concat ", "

        let accuracy =
            o.Results
            |> List.map (fun r -> $"{r.Evaluation.Accuracy:F3}")
            |> String.concat " | "

        $"| {i + 1} | {o.Predicted.Source} | {retrieved} | {conflicts[i]:F3} | {accuracy} |"
    yield ""
    for (merge, accuracy) in summary.ByMerge -> $"- {merge.Describe()}: {accuracy.Mean:F3} ± {accuracy.Std:F3}"
]

Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath output))
|> ignore

File.WriteAllLines(output, lines)
lines |> List.iter (printfn "%s")
printfn $"wrote {output}"
