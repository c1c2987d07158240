module LLGBM.Tests.TaskMixtureTests

open System.IO
open Expecto
open LLGBM
open LLGBM.Experiments
open LLGBM.Tasks
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels

let private example (prompt: string) (answer: string) =
    TaskExample(Prompt = prompt, Answer = answer)

let private task (name: string) (domain: string) (extraction: AnswerExtraction) (train: int) (test: int) =
    let spec =
        TaskSpec(Name = name, Domain = domain, Kind = TaskKind.Generation, Extraction = extraction)

    TaskData(
        spec,
        [|
            for i in 0 .. train - 1 -> example $"{name} train {i}" $"{name} answer {i}"
        |],
        [| for i in 0 .. test - 1 -> example $"{name} test {i}" $"{name} answer {i}" |]
    )

let private prompts (examples: seq<TaskExample>) = [ for e in examples -> e.Prompt ]

[<Tests>]
let tests =
    testList "TaskMixture" [
        test "Union interleaves both splits one by one and ends with the longer split's rest" {
            let a = task "a" "letters" AnswerExtraction.FirstLine 3 2
            let b = task "b" "digits" AnswerExtraction.FirstLine 2 3
            let mix = TaskMixture.Union(a, b)

            Expect.equal (prompts mix.Train) [ "a train 0"; "b train 0"; "a train 1"; "b train 1"; "a train 2" ] "train"

            Expect.equal (prompts mix.Test) [ "a test 0"; "b test 0"; "a test 1"; "b test 1"; "b test 2" ] "test"
            Expect.equal mix.Spec.Name "mix-a+b" "default name"
            Expect.equal mix.Spec.Domain "mixture" "domain"
            Expect.equal (List.ofSeq mix.Spec.Components) [ "a"; "b" ] "components"
            Expect.equal (TaskMixture.Union(a, b, "both").Spec.Name) "both" "given name"
        }

        test "The mixture's first 2n test examples are the first n of each component's" {
            let a = task "a" "letters" AnswerExtraction.FirstLine 5 7
            let b = task "b" "digits" AnswerExtraction.FirstLine 5 9
            let mix = TaskMixture.Union(a, b)

            for n in 1..7 do
                let head = mix.Test |> Seq.take (2 * n) |> prompts |> set
                let expected = Seq.append (Seq.take n a.Test) (Seq.take n b.Test) |> prompts |> set
                Expect.equal head expected $"n = {n}"
        }

        test "Union keeps a shared extraction and falls back to the first line when the components differ" {
            let yes = task "y" "keywords" AnswerExtraction.YesNo 2 2
            let yes2 = task "z" "keywords" AnswerExtraction.YesNo 2 2
            let number = task "n" "arithmetic" AnswerExtraction.FinalNumber 2 2
            Expect.equal (TaskMixture.Union(yes, yes2).Spec.Extraction) AnswerExtraction.YesNo "shared"
            Expect.equal (TaskMixture.Union(yes, number).Spec.Extraction) AnswerExtraction.FirstLine "differing"
        }

        test "Union refuses a task mixed with itself, tasks of different kinds and empty splits" {
            let a = task "a" "letters" AnswerExtraction.FirstLine 2 2

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> TaskMixture.Union(a, a) |> ignore))
                "with itself"
                "same task"

            let choice =
                TaskData(
                    TaskSpec(Name = "c", Domain = "comparison", Kind = TaskKind.MultipleChoice),
                    [|
                        TaskExample(Prompt = "p", Answer = "A", Choices = ResizeArray [ "x"; "y" ])
                    |],
                    [|
                        TaskExample(Prompt = "q", Answer = "B", Choices = ResizeArray [ "x"; "y" ])
                    |]
                )

            let message =
                errorMessage<LlgbmException>(fun () -> TaskMixture.Union(a, choice) |> ignore)

            Expect.stringContains message "multiple_choice" "names the kind"
            Expect.stringContains message "c " "names the task"
            let empty = task "e" "digits" AnswerExtraction.FirstLine 2 0

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> TaskMixture.Union(a, empty) |> ignore))
                "e has no test examples"
                "empty split"
        }

        test "MixtureCondition.Texts draws ⌈K/2⌉ prompts of the first task and ⌊K/2⌋ of the second, alternating" {
            let a = task "a" "letters" AnswerExtraction.FirstLine 20 1
            let b = task "b" "digits" AnswerExtraction.FirstLine 20 1

            let texts =
                MixtureCondition.Texts(a, b, 5, 7L, PromptBatchMode.PromptsOnly) |> List.ofSeq

            let fromA =
                PromptBatches.Sample(a, 3, 7L, PromptBatchMode.PromptsOnly).Prompts
                |> List.ofSeq

            let fromB =
                PromptBatches.Sample(b, 2, 7L, PromptBatchMode.PromptsOnly).Prompts
                |> List.ofSeq

            Expect.equal texts [ fromA[0]; fromB[0]; fromA[1]; fromB[1]; fromA[2] ] "interleaved"
            Expect.equal (List.distinct texts).Length 5 "distinct"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    MixtureCondition.Texts(a, b, 1, 0L, PromptBatchMode.PromptsOnly) |> ignore))
                "at least 2"
                "K = 1"
        }

        test "llgbm tasks mix writes the mixture, keeps it on a rerun and refuses to overwrite a different task" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let suite = Path.Combine(root, "suite")
                TaskDirectory.Save(Path.Combine(suite, "a"), task "a" "letters" AnswerExtraction.FirstLine 4 3)
                TaskDirectory.Save(Path.Combine(suite, "b"), task "b" "digits" AnswerExtraction.FirstLine 4 3)
                let out = Path.Combine(root, "mixtures")

                let mix extra =
                    llgbm (
                        [
                            "tasks"
                            "mix"
                            "--tasks"
                            suite
                            "--first"
                            "a"
                            "--second"
                            "b"
                            "--out"
                            out
                        ]
                        @ extra
                    )

                let (code, stdout, err) = mix []
                Expect.equal code 0 err
                Expect.stringContains stdout "8 train and 6 test examples" "summary"
                let written = TaskDirectory.Load(Path.Combine(out, "mix-a+b"))
                Expect.equal (prompts written.Train |> List.take 2) [ "a train 0"; "b train 0" ] "interleaved on disk"
                Expect.equal (List.ofSeq written.Spec.Components) [ "a"; "b" ] "components on disk"
                let (code, stdout, err) = mix []
                Expect.equal code 0 err
                Expect.stringContains stdout "already there" "kept"
                TaskDirectory.Save(Path.Combine(suite, "b"), task "b" "digits" AnswerExtraction.FirstLine 5 3)
                let (code, _, err) = mix []
                Expect.notEqual code 0 "a different mixture is not overwritten"
                Expect.stringContains err "--force" "says how"
                let (code, _, err) = mix [ "--force" ]
                Expect.equal code 0 err
                Expect.equal (TaskDirectory.Load(Path.Combine(out, "mix-a+b"))).Train.Count 9 "replaced"

                let (code, _, err) =
                    llgbm [
                        "tasks"
                        "mix"
                        "--tasks"
                        suite
                        "--first"
                        "a"
                        "--second"
                        "nope"
                        "--out"
                        out
                    ]

                Expect.notEqual code 0 "missing component"
                Expect.stringContains err "nope" "names it")
        }
    ]
