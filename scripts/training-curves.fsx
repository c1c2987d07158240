// Training curves of the generator configs: the weight term, the delta term and the delta cosine of the step's
// generated adapters to their teachers against the step, and the held-out accuracy at each evaluation, one line per
// config (its run of the given seed, default 0). Reads RUNS/generators/*/metrics.jsonl (runs still training
// included) and writes OUT/figures/training-curves.html.
//
//   ./llgbm --help >/dev/null                                  # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/training-curves.fsx [RUNS] [OUT] [SEED]  # defaults: runs, paper, 0
#load "Common.fsx"

open System
open Deedle
open XPlot.Plotly
open Common

let seed =
    match arguments |> Array.tryItem 2 with
    | None -> 0L
    | Some s ->
        match Int64.TryParse s with
        | true, v -> v
        | _ -> fail $"SEED: expected an integer, got '{s}'."

let runs =
    loadRuns runsRoot |> List.filter (fun r -> r.Seed = seed) |> List.sortBy _.Group

if runs.IsEmpty then
    fail $"{runsRoot}/generators: no run of seed {seed}."

/// One line of a metrics log (NaN, i.e. missing, where the line does not hold the figure).
type MetricsRow = {
    Step: int
    Weight: float
    Delta: float
    DeltaCosine: float
    HeldOutAccuracy: float
}

/// A run's metrics as a Deedle frame, one row per logged line (training lines and evaluation lines).
let metricsFrame (run: Run) : Frame<int, string> =
    let value line key =
        metric line key |> Option.defaultValue nan

    readMetrics run
    |> List.map (fun line -> {
        Step = (metric line "step" |> Option.defaultValue nan |> int)
        Weight = value line "weight"
        Delta = value line "delta"
        DeltaCosine = value line "delta_cosine"
        HeldOutAccuracy = value line "eval_heldout_accuracy"
    })
    |> Frame.ofRecords

let frames = [
    for run in runs do
        let frame = metricsFrame run

        let last =
            if frame.RowCount = 0 then
                0
            else
                frame.GetColumn<int>("Step").Values |> Seq.max

        printfn "  %s: %d lines, last step %d of %d" run.Name frame.RowCount last run.Config.Steps
        run, frame
]

/// The run's (step, value) points of a column, the lines without the figure left out.
let points (frame: Frame<int, string>) (column: string) =
    if frame.RowCount = 0 then
        [], []
    else
        let values = frame.GetColumn<float> column |> Series.dropMissing
        let steps = frame.GetColumn<int> "Step" |> Series.getAll values.Keys
        List.ofSeq steps.Values, List.ofSeq values.Values

let chart (id: string) (title: string) (column: string) (yTitle: string) (scale: float) =
    let traces = [
        for i, (run, frame) in List.indexed frames do
            let steps, values = points frame column

            if not steps.IsEmpty then
                Scatter(
                    x = steps,
                    y = (values |> List.map (fun v -> scale * v)),
                    mode = (if steps.Length < 15 then "lines+markers" else "lines"),
                    name = run.Group,
                    line = Line(color = palette[i % palette.Length])
                )
    ]

    let layout =
        Layout(title = title, xaxis = Xaxis(title = "step"), yaxis = Yaxis(title = yTitle), width = 900., height = 450.)

    if traces.IsEmpty then
        printfn "  no run logs %s" column

    traces |> Chart.Plot |> Chart.WithLayout layout |> Chart.WithId id

writeFigure
    "training-curves"
    "Training curves"
    ($"The run of seed {seed} of each generator config: "
     + (runs |> List.map _.Name |> String.concat ", ")
     + ". The weight and delta terms are the unweighted loss terms of the step (the delta term only where λ_δ > 0); "
     + "the delta cosine is that of the step's generated adapters to their teachers; the held-out accuracy is the "
     + "mean over the held-out tasks at each evaluation.")
    [
        "Weight term", chart "training-weight" "Weight term" "Weight" "loss" 1.0
        "Delta term", chart "training-delta" "Delta term" "Delta" "loss" 1.0
        "Delta cosine",
        chart "training-delta-cosine" "Delta cosine to the teacher (training batches)" "DeltaCosine" "cosine" 1.0
        "Held-out accuracy",
        chart "training-heldout-accuracy" "Held-out accuracy" "HeldOutAccuracy" "accuracy (%)" 100.0
    ]
