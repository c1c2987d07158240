// Cross-backbone transfer (`llgbm generator transfer`, the pipeline's transfer stage): the two-stage generator's
// prompts → δ predictor trained on backbone A (the embedded base model) with delta-meaning targets drives the
// δ → LoRA decoder trained on backbone B (preset tiny-b: another width and depth), evaluated on B's tasks next to the
// same two-stage generator trained natively on B (with meaning and with activation targets), B's base model, oracle
// teachers, mean teacher and random adapter; and whether the activation-target runs can compose at all. Reads
// RUNS/transfer/{meaning,activation}.json and RUNS/transfer/runs/*/results/heldout.json; writes OUT/tables/transfer.md
// (+ .tex).
//
//   ./llgbm --help >/dev/null                       # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/transfer.fsx [RUNS] [OUT]    # defaults: runs, paper
#load "Common.fsx"

open System.IO
open LLGBM.Generators
open Common
open LLGBM.Experiments

let meaningFile = layout.TransferResults "meaning"
let activationFile = layout.TransferResults "activation"

for file in [ meaningFile; activationFile ] do
    if not (File.Exists file) then
        fail $"{file}: no transfer result (llgbm generator transfer --out {file}; llgbm pipeline writes it)."

let read (file: string) =
    try
        GeneratorTransfer.Read file
    with :? LLGBM.LlgbmException as e ->
        fail e.Message

let meaning = read meaningFile
let activation = read activationFile

if not meaning.Composable then
    fail $"{meaningFile}: the meaning runs did not compose ({meaning.Reason})."

/// The final evaluation of a run of the stage (RUNS/transfer/runs/NAME), when it finished.
let runResults (name: string) =
    let path =
        Path.Combine(layout.TransferRun name, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)

    if File.Exists path then
        Some(GeneratorRun.ReadResults path)
    else
        None

/// Mean accuracy over the tasks of a split (and the mean delta cosine to the oracle), of rows of one method.
let summary (rows: MethodTaskResult seq) (split: string) =
    let rows = rows |> Seq.filter (fun r -> r.Split = split) |> List.ofSeq

    if rows.IsEmpty then
        nan, nan
    else
        let cosines = rows |> List.choose (fun r -> Option.ofNullable r.DeltaCosine)

        rows |> List.averageBy (fun r -> r.Mean), (if cosines.IsEmpty then nan else List.average cosines)

let methodRows (results: MethodTaskResult seq) (method: string) =
    results |> Seq.filter (fun r -> r.Method = method)

let row (label: string) (backbone: string) (rows: MethodTaskResult seq) =
    let heldOut, cosine = summary rows "held-out"
    let inDomain, _ = summary rows "in-domain"
    [ label; backbone; percent heldOut; percent inDomain; fixedDigits 2 cosine ]

let b = $"B (H {meaning.DecoderHiddenSize})"
let a = $"A (H {meaning.PredictorHiddenSize})"

let activationNative =
    runResults "activation-b"
    |> Option.map (fun e -> methodRows e.Results "generated")
    |> Option.defaultValue Seq.empty

let main = {
    Caption =
        "Cross-backbone transfer: backbone A's prompts → δ predictor (meaning targets) driving backbone B's δ "
        + "→ LoRA decoder, on B's tasks; mean accuracy over tasks and mean delta cosine to B's oracle teacher "
        + "(held-out)"
    Left = 2
    Header = [ "method"; "evaluated on"; "held-out"; "in-domain"; "δ-cos (held-out)" ]
    Rows = [
        row "base model" b (methodRows meaning.Results "base")
        row "oracle teacher" b (methodRows meaning.Results "oracle")
        row "mean teacher" b (methodRows meaning.Results "mean-teacher")
        row "random adapter" b (methodRows meaning.Results "random")
        row "two-stage on B, meaning targets (native)" b (methodRows meaning.Results "native")
        row "two-stage on B, activation targets (native)" b activationNative
        row
            "A's predictor → B's decoder, meaning targets, δ̂ as predicted (transfer, raw)"
            b
            (methodRows meaning.Results "transfer-raw")
        row
            "A's predictor → B's decoder, meaning targets, δ̂ on B's scale (transfer)"
            b
            (methodRows meaning.Results "transfer")
        (if activation.Composable then
             row
                 "A's predictor → B's decoder, activation targets (transfer)"
                 b
                 (methodRows activation.Results "transfer")
         else
             [
                 "A's predictor → B's decoder, activation targets (transfer)"
                 b
                 "—"
                 "—"
                 "—"
             ])
        row "two-stage on A, meaning targets (A's own run)" a meaning.PredictorOwn
    ]
    Notes = [
        $"Meaning deltas: {meaning.PredictorDeltaDim} coordinates on either backbone ({meaning.Reason})"
        "Activation targets: "
        + (if activation.Composable then
               activation.Reason
           else
               "cannot compose: " + activation.Reason)
        "B's scale: δ̂ standardised with A's training-teacher delta mean and std per coordinate and rescaled with B's before decoding."
        "The last row is A's own two-stage run evaluated on A's base model and teachers, for scale; every other row is evaluated on B."
    ]
}

let tasks =
    meaning.Results
    |> Seq.filter (fun r -> r.Split = "held-out")
    |> Seq.map (fun r -> r.Task)
    |> Seq.distinct
    |> List.ofSeq

let cell (method: string) (task: string) =
    meaning.Results
    |> Seq.tryFind (fun r -> r.Method = method && r.Task = task && r.Split = "held-out")
    |> Option.map (fun r ->
        if r.Accuracies.Count > 1 then
            $"{percent r.Mean} ± {percent r.Std}"
        else
            percent r.Mean)
    |> Option.defaultValue "—"

let perTask = {
    Caption = "Cross-backbone transfer per held-out task of backbone B (mean ± std over conditions)"
    Left = 1
    Header = [
        "task"
        "base"
        "oracle"
        "native (meaning)"
        "transfer A → B, raw"
        "transfer A → B, B's scale"
    ]
    Rows = [
        for task in tasks ->
            [
                task
                cell "base" task
                cell "oracle" task
                cell "native" task
                cell "transfer-raw" task
                cell "transfer" task
            ]
    ]
    Notes = []
}

writeTables "transfer" [ main; perTask ]
