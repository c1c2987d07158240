module LLGBM.Tests.EvalCommandTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Cli
open LLGBM.Cli.Commands
open LLGBM.Experiments
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures
open LLGBM.Tests.SafetensorsTests.Kit

let private tok = TestTokenizer.tokenizer

let private tasks = [|
    task "gen" TaskKind.Generation AnswerExtraction.FirstLine [ answered "12+30=" "42"; answered "x" "y" ]
    task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [
        choice "12+30=" [ "42"; "7" ] "A"
        choice "IJ:" [ "A"; "B"; "C" ] "C"
    ]
|]

[<Tests>]
let tests =
    testList "EvalCommand" [
        test "EvaluateAll: each task in each format, task-major; the JSON file and the table show every result" {
            use model = micro 91L
            let options = EvaluationOptions(MaxNewTokens = 3, BatchSize = 2)
            let lines = ResizeArray<string>()

            let results =
                SuiteEvaluation.EvaluateAll(
                    evaluated model,
                    tok,
                    tasks,
                    (EvalCommand.Formats "both"),
                    options,
                    (fun line -> lines.Add line)
                )

            let expected = [
                for data in tasks do
                    for format in [ PromptFormat.Bare; PromptFormat.WithInstruction ] ->
                        TaskEvaluator.Evaluate(
                            evaluated model,
                            tok,
                            data,
                            EvaluationOptions(MaxNewTokens = 3, BatchSize = 2, Format = format)
                        )
            ]

            Expect.equal (List.ofSeq results) expected "one evaluation per task and format"
            Expect.isTrue (lines |> Seq.exists (fun l -> l.StartsWith "mc (instructed): choice_accuracy")) "log"

            withTempDir (fun dir ->
                let path = Path.Combine(dir, "eval.json")
                EvaluationResults.Write(path, results)
                use doc = JsonDocument.Parse(File.ReadAllText path)

                let rows = [
                    for o in doc.RootElement.EnumerateArray() ->
                        o.GetProperty("task").GetString(),
                        o.GetProperty("format").GetString(),
                        o.GetProperty("metric").GetString(),
                        o.GetProperty("n").GetInt32()
                ]

                Expect.equal
                    rows
                    [
                        "gen", "bare", "exact_match", 2
                        "gen", "instructed", "exact_match", 2
                        "mc", "bare", "choice_accuracy", 2
                        "mc", "instructed", "choice_accuracy", 2
                    ]
                    "rows"

                for o in doc.RootElement.EnumerateArray() do
                    Expect.equal (o.GetProperty("model").GetString()) "micro" "model"
                    Expect.equal (o.GetProperty("domain").GetString()) "test-domain" "domain"
                    Expect.equal (o.GetProperty("adapter").ValueKind) JsonValueKind.Null "adapter")

            use text = new StringWriter()
            EvalCommand.WriteTable(text, results)
            let table = text.ToString()

            for r in results do
                let row =
                    table.Split '\n'
                    |> Array.tryFind (fun line -> line.Contains $" {r.Task} " && line.Contains $" {r.Format} ")

                let row = Expect.wantSome row $"a row for {r.Task} ({r.Format})"

                Expect.stringContains
                    row
                    (r.Accuracy.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))
                    "accuracy"

                Expect.stringContains row $"{r.Correct} / {r.N}" "counts"
        }

        test "Select: the named tasks in the given order, all when none is named; unknown names are an error" {
            Expect.equal (SuiteEvaluation.Select(tasks, [||])) tasks "all"

            Expect.equal
                (List.ofSeq (SuiteEvaluation.Select(tasks, [| "mc"; "gen"; "mc" |])))
                [ tasks[1]; tasks[0] ]
                "named"

            let message =
                errorMessage<LLGBM.LlgbmException>(fun () ->
                    SuiteEvaluation.Select(tasks, [| "gen"; "nope" |]) |> ignore)

            Expect.stringContains message "nope" "names the unknown task"
            Expect.stringContains message "gen, mc" "lists the available tasks"
        }

        test "Formats, Normalization and ModelName: the option values" {
            Expect.equal (List.ofSeq (EvalCommand.Formats "bare")) [ PromptFormat.Bare ] "bare"
            Expect.equal (List.ofSeq (EvalCommand.Formats "instructed")) [ PromptFormat.WithInstruction ] "instructed"

            Expect.equal
                (List.ofSeq (EvalCommand.Formats "both"))
                [ PromptFormat.Bare; PromptFormat.WithInstruction ]
                "both"

            Expect.equal
                [ for n in EvalCommand.NormalizationChoices -> EvalCommand.Normalization n ]
                [
                    LengthNormalization.None
                    LengthNormalization.Tokens
                    LengthNormalization.Characters
                    LengthNormalization.Bytes
                ]
                "normalisations"

            Expect.equal (EvalCommand.ModelName "runs/base-tiny/") "base-tiny" "last path component"
        }

        test "llgbm eval: an unknown --format or --normalize is refused before anything is loaded" {
            use out = new StringWriter()
            use err = new StringWriter()

            for args in [ [ "--format"; "chat" ]; [ "--normalize"; "words" ] ] do
                let code =
                    LlgbmCommand.Run(Array.ofList ([ "eval"; "--model"; "m"; "--tasks"; "t" ] @ args), out, err)

                Expect.notEqual code 0 $"%A{args}"
        }
    ]
