module LLGBM.Tests.StepProgressTests

open System.IO
open System.Text.RegularExpressions
open Expecto
open Spectre.Console
open LLGBM.Cli
open LLGBM.Tests.TestCli

/// A StringWriter that counts its flushes.
type private CountingWriter() =
    inherit StringWriter()
    member val Flushes = 0 with get, set

    override this.Flush() =
        this.Flushes <- this.Flushes + 1
        base.Flush()

/// Reports steps 1..total of `name` with loss 1/step.
let private report (progress: IStepProgress) (name: string) (total: int) =
    for step in 1..total do
        progress.Step(StepReport(name, step, total, 1.0 / float step))

/// A Spectre console that claims to be an interactive ANSI terminal, writing into `writer`.
let private fakeTerminal (writer: TextWriter) =
    AnsiConsole.Create(
        AnsiConsoleSettings(
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Yes,
            Out = AnsiConsoleOutput(writer)
        )
    )

[<Tests>]
let tests =
    testList "StepProgress" [
        test "PlainStepProgress prints every n-th step and the last, in the logs' line format, each line flushed" {
            use writer = new CountingWriter()
            let progress = PlainStepProgress(writer, "teachers", 50)
            report progress "add-1" 120
            progress.Line "[teachers] add-1: done"

            let lines =
                writer.ToString().Split('\n', System.StringSplitOptions.RemoveEmptyEntries)
                |> Array.map (fun l -> l.TrimEnd '\r')

            Expect.sequenceEqual
                lines
                [|
                    "[teachers] add-1: step 50/120  loss 0.0200"
                    "[teachers] add-1: step 100/120  loss 0.0100"
                    "[teachers] add-1: step 120/120  loss 0.0083"
                    "[teachers] add-1: done"
                |]
                "steps 50, 100, the last, then the log line"

            Expect.equal writer.Flushes 4 "one flush per line"
        }

        test "PlainStepProgress without a name puts the detail after the loss" {
            use writer = new StringWriter()
            let progress = PlainStepProgress(writer, "pretrain", 100)
            Expect.isNone (Option.ofObj (progress.Format(StepReport(null, 99, 200, 0.5, "  lr 0.001  3s")))) "step 99"

            Expect.equal
                (progress.Format(StepReport(null, 100, 200, 0.5, "  lr 0.001  3s")))
                "[pretrain] step 100/200  loss 0.5000  lr 0.001  3s"
                "step 100"
        }

        test "StepProgress.Run on a writer that is not the terminal writes plain lines and returns the body's value" {
            use writer = new StringWriter()
            Expect.isFalse (StepProgress.IsTerminal writer) "a StringWriter is no terminal"

            let value =
                StepProgress.Run(
                    writer,
                    "pretrain",
                    2,
                    fun progress ->
                        report progress null 3
                        42
                )

            Expect.equal value 42 "the body's value"

            Expect.equal
                (writer.ToString().Replace("\r", ""))
                "[pretrain] step 2/3  loss 0.5000\n[pretrain] step 3/3  loss 0.3333\n"
                "plain lines only"
        }

        test "StepProgress.RunLive draws a bar per name with its step and loss, and log lines above the bars" {
            use writer = new StringWriter()

            let value =
                StepProgress.RunLive(
                    fakeTerminal writer,
                    "teachers",
                    fun progress ->
                        report progress "upper" 30
                        progress.Line "[teachers] upper: kept"
                        report progress "reverse" 20
                        "done"
                )

            Expect.equal value "done" "the body's value"
            Expect.stringContains (writer.ToString()) "\u001b[" "drawn with ANSI escapes"
            // the text without its escape sequences (cursor moves, bold)
            let text = Regex.Replace(writer.ToString(), "\u001b\\[[0-9;?]*[A-Za-z]", "")

            Expect.stringContains text "upper step 30/30  loss 0.0333" "the first bar's last state"
            Expect.stringContains text "reverse step 20/20  loss 0.0500" "the second bar's last state"
            Expect.stringContains text "100%" "finished bars"
            Expect.stringContains text "[teachers] upper: kept" "the log line"
        }

        test "StepProgress.RunLive names the bar of a run without a name after the prefix" {
            use writer = new StringWriter()

            StepProgress.RunLive(
                fakeTerminal writer,
                "pretrain",
                fun progress ->
                    report progress null 10
                    0
            )
            |> ignore

            let text = Regex.Replace(writer.ToString(), "\u001b\\[[0-9;?]*[A-Za-z]", "")

            Expect.stringContains text "pretrain step 10/10  loss 0.1000" "the bar's last state"
        }

        test "teachers train to a redirected writer logs plain progress lines, no escapes" {
            let root = TestPools.tempRoot "llgbm-progress"
            let baseDir, suite = TestPools.tinyBaseAndSuite root

            let (code, _, err) =
                llgbm [
                    "teachers"
                    "train"
                    "--base"
                    baseDir
                    "--tasks"
                    suite
                    "--out"
                    Path.Combine(root, "teachers")
                    "--task"
                    "upper"
                    "--steps"
                    "4"
                    "--batch-size"
                    "4"
                    "--checkpoints"
                    "2"
                    "--every"
                    "2"
                    "--eval-limit"
                    "2"
                ]

            Expect.equal code 0 err
            Expect.isFalse (err.Contains '\u001b') "no ANSI escapes"

            let steps =
                err.Split('\n')
                |> Array.filter (fun l -> l.StartsWith "[teachers] upper: step ")
                |> Array.map (fun l -> l.TrimEnd '\r')

            Expect.equal steps.Length 3 $"the last step's progress line and two kept adapters' lines:\n{err}"
            Expect.stringStarts steps[0] "[teachers] upper: step 2, train loss " "kept adapter at step 2"
            Expect.stringStarts steps[1] "[teachers] upper: step 4/4  loss " "progress line at the last step"
            Expect.stringStarts steps[2] "[teachers] upper: step 4, train loss " "kept adapter at step 4"
        }
    ]
