// Shared by the paper scripts (#load "Common.fsx"): the packages, the built library, the command line
// (RUNS = the results root, default `runs`; OUT = the output root, default `paper`), readers of the pipeline's
// results and writers of Markdown + LaTeX tables and Plotly HTML pages. Nothing here trains or computes deltas.
//
// The library comes from the command line's build output through Library.fsx: build it once with
// `./llgbm --help >/dev/null` or `dotnet build src/LLGBM.Cli -c Release`. The table scripts read JSON only and never
// load TorchSharp's native libraries.
#r "nuget: Deedle, 8.1.0"
#r "nuget: XPlot.Plotly, 4.1.0"
#load "Library.fsx"

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Deedle
open LLGBM
open LLGBM.Generators
open LLGBM.Training
open LLGBM.Experiments

// ---------------------------------------------------------------------------------------------------------------
// Command line

/// The script's arguments after its own path.
let arguments = fsi.CommandLineArgs |> Array.skip 1

/// The results root (first argument, default `runs`).
let runsRoot =
    arguments
    |> Array.tryItem 0
    |> Option.defaultValue LLGBM.Experiments.RunsLayout.DefaultRoot

/// The runs tree under `runsRoot`: every results path the scripts read.
let layout = LLGBM.Experiments.RunsLayout(runsRoot)

/// The output root (second argument, default `paper`).
let outRoot = arguments |> Array.tryItem 1 |> Option.defaultValue "paper"

/// Stops the script (exit code 1) with a message naming what is missing or malformed.
let fail (message: string) : 'T =
    eprintfn "error: %s" message
    exit 1

// ---------------------------------------------------------------------------------------------------------------
// Generator runs

/// One generator run directory `RUNS/generators/<config>-seed<S>[-ld<λ>]`.
type Run = {
    /// The directory.
    Dir: string
    /// The directory name, e.g. `multitask-seed0-ld0.3`.
    Name: string
    /// The config without the seed: the directory name less `-seed<S>`, e.g. `multitask-ld0.3`.
    Group: string
    /// The run's seed (config.json).
    Seed: int64
    /// The run's config.json.
    Config: GeneratorConfig
    /// `results/heldout.json`, when the run has finished.
    Evaluation: GeneratorEvaluation option
}

let private seedSuffix = Regex(@"-seed\d+", RegexOptions.CultureInvariant)

/// The config name without the seed suffix: `multitask-seed0-ld0.3` → `multitask-ld0.3`.
let groupOf (runName: string) = seedSuffix.Replace(runName, "", 1)

/// λ_δ of a run (its config's delta weight).
let lambdaDelta (run: Run) = run.Config.Delta.Value

/// Every run under `root/generators` (directories holding a config.json, hidden ones skipped), ordered by name.
let loadRuns (root: string) : Run list =
    let dir = LLGBM.Experiments.RunsLayout(root).Generators

    if not (Directory.Exists dir) then
        fail $"{dir}: no generator runs (expected the directories RUNS/generators/<config>-seed<S>/)."

    [
        for runDir in Directory.GetDirectories dir |> Array.sort do
            let name = Path.GetFileName runDir
            let configFile = Path.Combine(runDir, GeneratorRun.ConfigFile)

            if not (name.StartsWith ".") && File.Exists configFile then
                let config = GeneratorConfig.Load configFile

                let results =
                    Path.Combine(runDir, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)

                let evaluation =
                    if File.Exists results then
                        Some(GeneratorRun.ReadResults results)
                    else
                        None

                {
                    Dir = runDir
                    Name = name
                    Group = groupOf name
                    Seed = config.Seed
                    Config = config
                    Evaluation = evaluation
                }
    ]

/// The runs that have `results/heldout.json`, reporting the others.
let finishedRuns (runs: Run list) =
    for r in runs do
        if r.Evaluation.IsNone then
            printfn "  %s: no %s/%s yet, left out" r.Name GeneratorRun.ResultsFolder GeneratorRun.HeldOutFile

    runs |> List.filter _.Evaluation.IsSome

/// The label of a method in the tables: the generator's config group, or the reference method's name.
let methodLabel (run: Run) (method: string) =
    match method with
    | "generated" -> run.Group
    | "mean-teacher" -> "mean teacher"
    | "random" -> "random adapter"
    | other -> other

/// The reference methods, in table order.
let referenceMethods = [ "base"; "oracle"; "mean teacher"; "random adapter" ]

/// One method on one task in one run: a row of the results frame.
type ResultRow = {
    Label: string
    Method: string
    Run: string
    Group: string
    Seed: int
    Lambda: float
    Task: string
    Domain: string
    Split: string
    /// The task's accuracy: the mean over its evaluation conditions.
    Accuracy: float
    /// Cosine of the adapter's delta to the oracle teacher's (NaN, i.e. missing, for the base model).
    DeltaCosine: float
}

/// Every result of the finished runs as a Deedle frame (one row per run, method and task).
let resultsFrame (runs: Run list) : Frame<int, string> =
    [
        for run in runs do
            match run.Evaluation with
            | None -> ()
            | Some evaluation ->
                for r in evaluation.Results do
                    {
                        Label = methodLabel run r.Method
                        Method = r.Method
                        Run = run.Name
                        Group = run.Group
                        Seed = int run.Seed
                        Lambda = lambdaDelta run
                        Task = r.Task
                        Domain = r.Domain
                        Split = r.Split
                        Accuracy = r.Mean
                        DeltaCosine = if r.DeltaCosine.HasValue then r.DeltaCosine.Value else nan
                    }
    ]
    |> Frame.ofRecords

/// The condition sensitivity of each finished run's generated adapters over the held-out tasks.
let sensitivityFrame (runs: Run list) : Frame<int, string> =
    [
        for run in runs do
            match run.Evaluation with
            | Some e when not (isNull e.HeldOutSensitivity) -> {|
                Label = run.Group
                Run = run.Name
                Seed = int run.Seed
                Lambda = lambdaDelta run
                Ratio = e.HeldOutSensitivity.Ratio
                Spread = e.HeldOutSensitivity.RelativeSpread
              |}
            | _ -> ()
    ]
    |> Frame.ofRecords

// ---------------------------------------------------------------------------------------------------------------
// Aggregation over seeds

/// A figure over seeds: the mean and sample standard deviation (n − 1) of the per-seed values.
type Summary = { Mean: float; Std: float; Seeds: int }

/// The mean and sample standard deviation of the finite values (NaN mean when there are none, NaN std below two).
let summaryOf (values: float seq) =
    let xs = values |> Seq.filter Double.IsFinite |> Array.ofSeq

    if xs.Length = 0 then
        { Mean = nan; Std = nan; Seeds = 0 }
    else
        let mean = Array.average xs

        let std =
            if xs.Length < 2 then
                nan
            else
                sqrt (
                    xs
                    |> Array.sumBy (fun x -> (x - mean) ** 2.0)
                    |> fun s -> s / float (xs.Length - 1)
                )

        {
            Mean = mean
            Std = std
            Seeds = xs.Length
        }

/// Summaries of column `value` over seeds, keyed by the string columns `keys`: within each key and seed the rows
/// are first averaged per value of the `within` columns (so a task reported by several runs of one seed counts
/// once), then over those (the mean over tasks of a seed); the summary is over the per-seed means.
let summarizeOverSeeds (keys: string list) (within: string list) (value: string) (frame: Frame<int, string>) =
    let perUnit =
        frame
        |> Frame.sliceCols (keys @ [ "Seed" ] @ within @ [ value ])
        |> Frame.aggregateRowsBy (keys @ [ "Seed" ] @ within) [ value ] Stats.mean

    let perSeed =
        if within.IsEmpty then
            perUnit
        else
            perUnit |> Frame.aggregateRowsBy (keys @ [ "Seed" ]) [ value ] Stats.mean

    perSeed.Rows.Values
    |> Seq.groupBy (fun row -> keys |> List.map (fun k -> row.GetAs<string> k))
    |> Seq.map (fun (key, rows) ->
        let values =
            rows
            |> Seq.map (fun row ->
                let v = row.TryGetAs<float> value
                if v.HasValue then v.Value else nan)

        key, summaryOf values)
    |> Map.ofSeq

// ---------------------------------------------------------------------------------------------------------------
// Number formats

/// A fraction as a percentage with one decimal ("—" when missing).
let percent (x: float) =
    if Double.IsFinite x then
        (100.0 * x).ToString("0.0", Globalization.CultureInfo.InvariantCulture)
    else
        "—"

/// A number with `digits` decimals ("—" when missing).
let fixedDigits (digits: int) (x: float) =
    if Double.IsFinite x then
        // Rounded first, so that a value rounding to zero shows no sign.
        let x = Math.Round(x, digits) + 0.0
        x.ToString("0." + String('0', digits), Globalization.CultureInfo.InvariantCulture).Replace("-", "−")
    else
        "—"

/// "mean ± std" in a format; the mean alone for a single seed, "—" when missing.
let meanStd (format: float -> string) (s: Summary option) =
    match s with
    | Some s when Double.IsFinite s.Mean ->
        if Double.IsFinite s.Std then
            $"{format s.Mean} ± {format s.Std}"
        else
            format s.Mean
    | _ -> "—"

/// λ as a short label: 0, 0.3, 1, 3.
let lambdaLabel (x: float) =
    x.ToString("0.###", Globalization.CultureInfo.InvariantCulture)

// ---------------------------------------------------------------------------------------------------------------
// Output files

/// Writes a UTF-8 text file atomically (creating its directory) and reports it.
let writeText (path: string) (text: string) =
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    AtomicFile.WriteText(path, text)

    printfn "wrote %s" path

/// A table: a caption, column headers (the first `Left` columns left-aligned, the others right-aligned), rows and
/// notes.
type Table = {
    Caption: string
    Left: int
    Header: string list
    Rows: string list list
    Notes: string list
}

/// The table in Markdown: the caption in bold, the header and its rule row, the rows, the notes.
let markdownOf (table: Table) =
    let line (cells: string list) =
        "| "
        + String.Join(" | ", cells |> List.map (fun c -> c.Replace("|", "\\|")))
        + " |"

    let rule =
        "|"
        + String.Join("|", table.Header |> List.mapi (fun i _ -> if i < table.Left then "---" else "---:"))
        + "|"

    [
        $"**{table.Caption}**"
        ""
        line table.Header
        rule
        yield! table.Rows |> List.map line
        if not table.Notes.IsEmpty then
            ""
            yield! table.Notes
    ]
    |> String.concat "\n"

let private latexEscape (text: string) =
    let plain = StringBuilder()
    // λ_δ as one symbol; \u0001 stands for it while the other characters are escaped.
    for c in text.Replace("λ_δ", "\u0001").Replace("λ_w", "\u0002") do
        match c with
        | '\\' -> plain.Append @"\textbackslash{}"
        | '&'
        | '%'
        | '$'
        | '#'
        | '_'
        | '{'
        | '}' -> plain.Append('\\').Append(c)
        | '~' -> plain.Append @"\textasciitilde{}"
        | '^' -> plain.Append @"\textasciicircum{}"
        | '±' -> plain.Append @"$\pm$"
        | '−' -> plain.Append "$-$"
        | '—' -> plain.Append "---"
        | '–' -> plain.Append "--"
        | 'λ' -> plain.Append @"$\lambda$"
        | 'δ' -> plain.Append @"$\delta$"
        | 'Δ' -> plain.Append @"$\Delta$"
        | '·' -> plain.Append @"$\cdot$"
        | '≈' -> plain.Append @"$\approx$"
        | '×' -> plain.Append @"$\times$"
        | '\u0001' -> plain.Append @"$\lambda_\delta$"
        | '\u0002' -> plain.Append @"$\lambda_w$"
        | c -> plain.Append c
        |> ignore
    // Markdown code spans and emphasis in notes become LaTeX.
    let escaped = plain.ToString()
    let code = Regex.Replace(escaped, "`([^`]*)`", @"\texttt{$1}")
    Regex.Replace(code, @"\*\*([^*]*)\*\*", @"\textbf{$1}")

/// The table in LaTeX (booktabs): a table float with the caption, the notes below the tabular.
let latexOf (label: string) (table: Table) =
    let row (cells: string list) =
        String.Join(" & ", cells |> List.map latexEscape) + @" \\"

    let columns =
        String('l', table.Left) + String('r', table.Header.Length - table.Left)

    [
        @"\begin{table}[t]"
        @"\centering"
        $@"\caption{{{latexEscape table.Caption}}}"
        $@"\label{{tab:{label}}}"
        @"\small"
        $@"\begin{{tabular}}{{{columns}}}"
        @"\toprule"
        row table.Header
        @"\midrule"
        yield! table.Rows |> List.map row
        @"\bottomrule"
        @"\end{tabular}"
        if not table.Notes.IsEmpty then
            @"\par\smallskip\footnotesize"
            String.Join(" ", table.Notes |> List.map latexEscape)
        @"\end{table}"
    ]
    |> String.concat "\n"

/// Writes `OUT/tables/NAME.md` and `OUT/tables/NAME.tex` holding the tables in order.
let writeTables (name: string) (tables: Table list) =
    let md = tables |> List.map markdownOf |> String.concat "\n\n"
    writeText (Path.Combine(outRoot, "tables", name + ".md")) (md + "\n")

    let tex =
        tables
        |> List.mapi (fun i t -> latexOf (if i = 0 then name else $"{name}-{i + 1}") t)
        |> String.concat "\n\n"

    writeText (Path.Combine(outRoot, "tables", name + ".tex")) (tex + "\n")

// ---------------------------------------------------------------------------------------------------------------
// Figures

/// plotly.js, pinned (the version XPlot.Plotly's JSON is written for).
let plotlyScript = "https://cdn.plot.ly/plotly-1.58.5.min.js"

/// A categorical colour palette (Plotly's default), so a config keeps its colour across the panels of a page.
let palette = [|
    "#1f77b4"
    "#ff7f0e"
    "#2ca02c"
    "#d62728"
    "#9467bd"
    "#8c564b"
    "#e377c2"
    "#7f7f7f"
    "#bcbd22"
    "#17becf"
|]

/// Writes `OUT/figures/NAME.html`: a page with a title, an optional paragraph and the charts (each with a heading),
/// loading plotly.js from its CDN.
let writeFigure (name: string) (title: string) (intro: string) (charts: (string * XPlot.Plotly.PlotlyChart) list) =
    let body =
        charts
        |> List.map (fun (heading, chart) -> $"<h2>{Net.WebUtility.HtmlEncode heading}</h2>\n{chart.GetInlineHtml()}")
        |> String.concat "\n"

    let page =
        $"""<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8" />
<title>{Net.WebUtility.HtmlEncode title}</title>
<script src="{plotlyScript}"></script>
<style>body {{ font-family: sans-serif; margin: 2em; }} p {{ max-width: 60em; }}</style>
</head>
<body>
<h1>{Net.WebUtility.HtmlEncode title}</h1>
<p>{Net.WebUtility.HtmlEncode intro}</p>
{body}
</body>
</html>
"""

    writeText (Path.Combine(outRoot, "figures", name + ".html")) page

// ---------------------------------------------------------------------------------------------------------------
// Other inputs

/// The metrics log of a run (NaN written as "NaN" becomes NaN; an incomplete last line is skipped).
let readMetrics (run: Run) : JsonObject list =
    let path = Path.Combine(run.Dir, GeneratorRun.MetricsFile)

    if File.Exists path then
        MetricsLog.Read(path, fun warning -> printfn "  %s" warning) |> List.ofSeq
    else
        printfn "  %s: no %s, left out" run.Name GeneratorRun.MetricsFile
        []

/// A number of a metrics line (missing when absent or not a number; "NaN" and the infinities as written).
let metric (line: JsonObject) (key: string) : float option =
    match line[key] with
    | null -> None
    | node ->
        match node.GetValueKind() with
        | Text.Json.JsonValueKind.Number -> Some(node.GetValue<float>())
        | Text.Json.JsonValueKind.String ->
            match node.GetValue<string>() with
            | "NaN" -> Some nan
            | "Infinity" -> Some infinity
            | "-Infinity" -> Some -infinity
            | _ -> None
        | _ -> None

/// Reads a JSON file as a node, naming the file when it is not JSON.
let readJson (path: string) : JsonNode =
    try
        JsonNode.Parse(File.ReadAllText path)
    with :? Text.Json.JsonException as e ->
        fail $"{path}: not JSON ({e.Message})."

/// A required member of a JSON object, naming the file and the member when it is missing.
let required (file: string) (node: JsonNode) (name: string) : JsonNode =
    match node[name] with
    | null -> fail $"{file}: expected a member \"{name}\" in {node.GetPath()}."
    | child -> child
