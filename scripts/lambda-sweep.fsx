// The λ_δ sweep: accuracy and delta cosine of the generated adapters against the delta term's weight λ_δ (each run's
// config.json delta.value), mean ± std over seeds. The sweep is every finished run of the given configs (default the
// weight+delta config `multitask` with its `-ld<λ>` variants, and `dnd-weight`, weight supervision alone, as λ = 0).
// Writes OUT/tables/lambda-sweep.md (+ .tex) and OUT/figures/lambda-sweep.html.
//
//   ./llgbm --help >/dev/null                                    # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/lambda-sweep.fsx [RUNS] [OUT] [CONFIGS]   # defaults: runs, paper, multitask,dnd-weight
#load "Common.fsx"

open System
open System.Text.RegularExpressions
open Deedle
open XPlot.Plotly
open Common

let configs =
    (arguments |> Array.tryItem 2 |> Option.defaultValue "multitask,dnd-weight").Split(',')
    |> Array.map _.Trim()
    |> Set.ofArray

/// The config name without the λ suffix: `multitask-ld0.3` → `multitask`.
let configOf (group: string) =
    Regex.Replace(group, @"-ld[0-9.eE+\-]+$", "")

let runs =
    loadRuns runsRoot
    |> List.filter (fun r -> configs.Contains(configOf r.Group))
    |> finishedRuns

if runs.IsEmpty then
    fail $"{runsRoot}/generators: no finished run of {String.Join(',', configs)}."

for r in runs do
    printfn "  %s: λ_δ = %s, λ_w = %s" r.Name (lambdaLabel (lambdaDelta r)) (lambdaLabel r.Config.Weight.Value)

let lambdas = runs |> List.map lambdaDelta |> List.distinct |> List.sort
let labels = lambdas |> List.map lambdaLabel

// The generated adapters' results labelled by λ; the reference methods' results of the same runs.
let all = resultsFrame runs

let byLambda (frame: Frame<int, string>) =
    let lambda = frame.GetColumn<float> "Lambda" |> Series.mapValues lambdaLabel
    frame.ReplaceColumn("Label", lambda)
    frame

let generated =
    all
    |> Frame.filterRowValues (fun r -> r.GetAs<string> "Method" = "generated")
    |> byLambda

let accuracy =
    generated |> summarizeOverSeeds [ "Label"; "Split" ] [ "Task" ] "Accuracy"

let cosine =
    generated |> summarizeOverSeeds [ "Label"; "Split" ] [ "Task" ] "DeltaCosine"

let ratio =
    sensitivityFrame runs |> byLambda |> summarizeOverSeeds [ "Label" ] [] "Ratio"

let references =
    all |> summarizeOverSeeds [ "Label"; "Split" ] [ "Task" ] "Accuracy"

let groupsAt (lambda: float) =
    runs
    |> List.filter (fun r -> lambdaDelta r = lambda)
    |> List.map _.Group
    |> List.distinct
    |> String.concat ", "

let seedsAt label =
    [ "held-out"; "in-domain" ]
    |> List.choose (fun s -> accuracy.TryFind [ label; s ])
    |> List.map _.Seeds
    |> List.fold max 0

let table = {
    Caption = "Generated adapters against the delta term's weight λ_δ"
    Left = 2
    Header = [
        "λ_δ"
        "config"
        "seeds"
        "held-out acc. (%)"
        "in-domain acc. (%)"
        "held-out δ-cos"
        "in-domain δ-cos"
        "sensitivity ratio"
    ]
    Rows = [
        for lambda in lambdas ->
            let l = lambdaLabel lambda

            [
                l
                groupsAt lambda
                string (seedsAt l)
                meanStd percent (accuracy.TryFind [ l; "held-out" ])
                meanStd percent (accuracy.TryFind [ l; "in-domain" ])
                meanStd (fixedDigits 3) (cosine.TryFind [ l; "held-out" ])
                meanStd (fixedDigits 3) (cosine.TryFind [ l; "in-domain" ])
                meanStd (fixedDigits 2) (ratio.TryFind [ l ])
            ]
    ]
    Notes = [
        "λ_δ is each run's config.json delta.value (λ = 0: weight supervision alone). Accuracy and δ-cos (cosine of "
        + "the generated adapter's delta activation to the oracle teacher's): per seed the mean over the tasks, then "
        + "mean ± sample standard deviation over seeds (the mean alone for one seed). For reference, on the held-out "
        + "tasks of the same runs: base "
        + meanStd percent (references.TryFind [ "base"; "held-out" ])
        + "%, mean teacher "
        + meanStd percent (references.TryFind [ "mean teacher"; "held-out" ])
        + "%, oracle "
        + meanStd percent (references.TryFind [ "oracle"; "held-out" ])
        + "%."
        ""
        "Runs: "
        + (runs |> List.map (fun r -> $"`{r.Name}`") |> String.concat ", ")
        + "."
    ]
}

writeTables "lambda-sweep" [ table ]

// Figure: one line per split with error bars (std over seeds), λ as categories in numeric order.
let line (summaries: Map<string list, Summary>) (scale: float) (split: string) (color: string) (dash: string) =
    let points = labels |> List.map (fun l -> summaries.TryFind [ l; split ])

    let value f =
        points |> List.map (Option.map f >> Option.defaultValue nan)

    Scatter(
        x = labels,
        y = value (fun s -> scale * s.Mean),
        error_y =
            Error_y(
                ``type`` = "data",
                array = value (fun s -> if Double.IsFinite s.Std then scale * s.Std else 0.0),
                visible = true
            ),
        mode = "lines+markers",
        name = split,
        line = Line(color = color, dash = dash)
    )

let reference (label: string) (color: string) =
    let s = references.TryFind [ label; "held-out" ]
    let y = s |> Option.map (fun s -> 100.0 * s.Mean) |> Option.defaultValue nan

    Scatter(
        x = labels,
        y = List.replicate labels.Length y,
        mode = "lines",
        name = $"{label} (held-out)",
        line = Line(color = color, dash = "dot")
    )

let axes title yTitle =
    Layout(
        title = title,
        xaxis = Xaxis(title = "λ_δ", ``type`` = "category"),
        yaxis = Yaxis(title = yTitle),
        width = 800.,
        height = 450.
    )

let accuracyChart =
    [
        line accuracy 100.0 "held-out" palette[0] "solid"
        line accuracy 100.0 "in-domain" palette[1] "solid"
        reference "base" palette[7]
        reference "mean teacher" palette[5]
        reference "oracle" palette[2]
    ]
    |> Chart.Plot
    |> Chart.WithLayout(axes "Accuracy of the generated adapters" "accuracy (%)")
    |> Chart.WithId "lambda-sweep-accuracy"

let cosineChart =
    [
        line cosine 1.0 "held-out" palette[0] "solid"
        line cosine 1.0 "in-domain" palette[1] "solid"
    ]
    |> Chart.Plot
    |> Chart.WithLayout(axes "Delta cosine to the oracle teacher" "cosine")
    |> Chart.WithId "lambda-sweep-cosine"

writeFigure
    "lambda-sweep"
    "λ_δ sweep"
    ("Generated adapters against the delta term's weight λ_δ (configs "
     + String.Join(", ", configs)
     + "); mean over tasks per seed, error bars one standard deviation over seeds.")
    [ "Accuracy", accuracyChart; "Delta cosine", cosineChart ]
