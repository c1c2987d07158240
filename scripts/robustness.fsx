// The robustness table (RQ4): each method's accuracy when the generator's condition texts are written as the suite
// writes them, paraphrased (other wording of the prompt template) or reformatted (other layout, field order and
// casing), on the held-out and in-domain tasks, with the ΔW cosine between the adapters of rewritten and original
// conditions; mean ± std over seeds (per seed, the mean over tasks). Reads RUNS/robustness/robustness.json
// (`llgbm generator robustness`) and writes OUT/tables/robustness.md and robustness.tex.
//
//   ./llgbm --help >/dev/null                        # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/robustness.fsx [RUNS] [OUT]   # defaults: runs, paper
#load "Common.fsx"

open System.IO
open Common

let file = layout.Robustness

if not (File.Exists file) then
    fail
        $"{file}: no robustness results; run llgbm generator robustness --run RUN ... --out {file} (llgbm pipeline does)."

type Row = {
    Label: string
    Seed: int64
    Task: string
    Split: string
    Transform: string
    Accuracy: float
    AdapterCosine: float
}

let rows =
    (required file (readJson file) "results").AsArray()
    |> Seq.map (fun node ->
        let text name =
            (required file node name).GetValue<string>()

        let method = text "method"

        {
            Label =
                match method with
                | "generated" -> groupOf (text "name")
                | "mean-teacher" -> "mean teacher"
                | other -> other
            Seed = (required file node "seed").GetValue<int64>()
            Task = text "task"
            Split = text "split"
            Transform = text "transform"
            Accuracy = (required file node "mean").GetValue<float>()
            AdapterCosine =
                match node["adapter_cosine"] with
                | null -> nan
                | c -> c.GetValue<float>()
        })
    |> List.ofSeq

if rows.IsEmpty then
    fail $"{file}: no results."

let transforms = [ "Original"; "Paraphrased"; "Reformatted" ]
let splits = [ "held-out"; "in-domain" ]

let references =
    [ "base"; "oracle"; "mean teacher" ]
    |> List.filter (fun l -> rows |> List.exists (fun r -> r.Label = l))

let generators =
    rows
    |> List.map _.Label
    |> List.distinct
    |> List.filter (fun l -> not (List.contains l references))

/// mean ± std over seeds of the per-seed mean over tasks of a value.
let summary (label: string) (split: string) (transform: string) (value: Row -> float) =
    rows
    |> List.filter (fun r -> r.Label = label && r.Split = split && r.Transform = transform)
    |> List.groupBy _.Seed
    |> List.map (fun (_, rs) -> rs |> List.map value |> List.average)
    |> function
        | [] -> None
        | perSeed -> Some(summaryOf perSeed)

let accuracyTable = {
    Caption =
        "Robustness to the wording and layout of the condition prompts: accuracy (%) with the original, paraphrased and reformatted condition texts"
    Left = 1
    Header = [
        yield "method"
        for s in splits do
            for t in transforms -> $"{s} {t.ToLowerInvariant()}"
    ]
    Rows = [
        for label in references @ generators ->
            [
                yield label
                for s in splits do
                    for t in transforms -> meanStd percent (summary label s t _.Accuracy)
            ]
    ]
    Notes = [
        "The same examples of each task form the evaluation conditions under every rewrite, and every adapter is "
        + "scored on the task's standard test examples (bare prompts): only the condition's texts change. "
        + "Paraphrased: the prompt template's wording replaced by one of four other phrasings of the domain (`047 =` "
        + "becomes `what is 047 ?`); reformatted: one of four layouts with another template, field order and casing "
        + "(`INPUT: 047 | OUTPUT: 050`, `050 <= 047`). The reference methods ignore the condition, so their rows "
        + "repeat across rewrites. Generators: mean ± std over seeds of the mean over tasks."
    ]
}

let cosineTable = {
    Caption =
        "How far a rewrite moves the generated adapter: cosine between the ΔW generated from the rewritten and from the original texts of the same examples"
    Left = 1
    Header = [
        yield "method"
        for s in splits do
            for t in transforms |> List.tail -> $"{s} {t.ToLowerInvariant()}"
    ]
    Rows = [
        for label in generators ->
            [
                yield label
                for s in splits do
                    for t in transforms |> List.tail -> meanStd (fixedDigits 2) (summary label s t _.AdapterCosine)
            ]
    ]
    Notes = [
        "ΔW = scale · B · A of every module together; 1 would mean the rewrite leaves the adapter unchanged."
    ]
}

writeTables "robustness" [ accuracyTable; cosineTable ]
