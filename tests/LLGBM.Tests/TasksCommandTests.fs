module LLGBM.Tests.TasksCommandTests

open System.IO
open Expecto
open LLGBM.Tests.TestCli
open LLGBM.Cli
open LLGBM.Tasks
open LLGBM.Tests.SafetensorsTests.Kit
open LLGBM.Tests.TaskDirectoryTests
open LLGBM.Tests.TaskConvertersTests


[<Tests>]
let tests =
    testList "TasksCommand.Import" [
        test "writes a task directory that TaskDirectory.Load reads" {
            withTempDir (fun dir ->
                let out = Path.Combine(dir, "piqa")

                let (code, stdout, err) =
                    llgbm [
                        "tasks"
                        "import"
                        "--format"
                        "piqa"
                        "--input"
                        fixture "piqa.jsonl"
                        "--test-input"
                        fixture "piqa.jsonl"
                        "--out"
                        out
                        "--name"
                        "piqa-small"
                    ]

                Expect.equal code 0 err

                Expect.stringContains
                    stdout
                    "piqa-small (multiple choice, commonsense), 3 train and 3 test examples"
                    "summary"

                let task = TaskDirectory.Load out
                Expect.equal (task.Spec.Name, task.Spec.Domain) ("piqa-small", "commonsense") "spec"

                Expect.equal
                    (view task.Train[1])
                    ("Question: To open a jar with a stuck lid,\nAnswer:",
                     "B",
                     Some [
                         "put the jar in the freezer for an hour."
                         "run the lid under hot water, then twist it."
                     ])
                    "an example"

                Expect.equal task.Test.Count 3 "test split")
        }
        test "--domain overrides the default; the test split may be left out" {
            withTempDir (fun dir ->
                let (code, _, err) =
                    llgbm [
                        "tasks"
                        "import"
                        "--format"
                        "gsm8k"
                        "--input"
                        fixture "gsm8k.jsonl"
                        "--out"
                        dir
                        "--domain"
                        "arithmetic"
                    ]

                Expect.equal code 0 err
                let task = TaskDirectory.Load dir

                Expect.equal
                    (task.Spec.Name, task.Spec.Domain, task.Train.Count, task.Test.Count)
                    ("gsm8k", "arithmetic", 3, 0)
                    "spec and splits")
        }
        test "refuses to replace a task without --force" {
            withTempDir (fun dir ->
                let args = [
                    "tasks"
                    "import"
                    "--format"
                    "boolq"
                    "--input"
                    fixture "boolq.jsonl"
                    "--out"
                    dir
                ]

                let (code, _, err) = llgbm args
                Expect.equal code 0 err
                let (code, _, err) = llgbm args
                Expect.equal code 2 "refused"
                Expect.stringContains err "--force" "says how"
                let (code, _, err) = llgbm (args @ [ "--force" ])
                Expect.equal code 0 err)
        }
        test "a malformed row exits with code 2, naming the file and line, and writes nothing" {
            withTempDir (fun dir ->
                let input = Path.Combine(dir, "bad.jsonl")

                File.WriteAllText(
                    input,
                    File.ReadAllText(fixture "winogrande.jsonl") + "{\"sentence\": \"no blank\"}\n"
                )

                let out = Path.Combine(dir, "task")

                let (code, _, err) =
                    llgbm [ "tasks"; "import"; "--format"; "winogrande"; "--input"; input; "--out"; out ]

                Expect.equal code 2 "input error"

                Expect.stringContains
                    err
                    $"error: '{input}' line 4: \"sentence\" must hold exactly one blank"
                    "names file and line"

                Expect.isFalse (Directory.Exists out) "nothing written")
        }
        test "an unknown format exits with code 2 and lists the formats" {
            withTempDir (fun dir ->
                let (code, _, err) =
                    llgbm [
                        "tasks"
                        "import"
                        "--format"
                        "squad"
                        "--input"
                        fixture "piqa.jsonl"
                        "--out"
                        dir
                    ]

                Expect.equal code 2 "input error"
                Expect.stringContains err "arc-easy, arc-challenge, boolq" "lists formats")
        }
        test "tasks lists import among its subcommands" {
            let command = LLGBM.Cli.Commands.TasksCommand.Create()
            Expect.contains [ for c in command.Subcommands -> c.Name ] "import" "import registered"
        }
    ]
