module LLGBM.Tests.TaskEvaluatorTests

open Expecto
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures

let private tok = TestTokenizer.tokenizer

let private generation =
    task "gen" TaskKind.Generation AnswerExtraction.FirstLine [
        answered "12+30=" "42"
        answered "what is b?" "b"
        answered "x" "7777"
    ]

let private multipleChoice =
    task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [
        choice "12+30=" [ "42"; "7"; "41" ] "B"
        choice "IJ:" [ "A"; "77" ] "B"
        choice "say" [ "77"; "no" ] "A"
    ]

[<Tests>]
let tests =
    testList "TaskEvaluator" [
        test "Evaluate: generation tasks are scored by exact match, multiple-choice tasks by choice accuracy" {
            use model = micro 71L
            let options = EvaluationOptions(MaxNewTokens = 4, KeepPredictions = true)
            let g = TaskEvaluator.Evaluate(evaluated model, tok, generation, options)

            Expect.equal
                (g.ToJson())
                (GenerationEvaluator.Evaluate(evaluated model, tok, generation, options).ToJson())
                "generation"

            Expect.equal g.Metric "exact_match" "generation metric"
            Expect.isNotNull g.Predictions[0].Completion "completions"
            let m = TaskEvaluator.Evaluate(evaluated model, tok, multipleChoice, options)
            Expect.equal m.Metric "choice_accuracy" "multiple-choice metric"
            Expect.isNotNull m.Predictions[0].ChoiceScores "choice scores"
            Expect.equal (m.Task, m.Domain, m.Model, m.Adapter, m.N) ("mc", "test-domain", "micro", null, 3) "labels"
        }

        test "Evaluate: deterministic — the same inputs give the same results, predictions and scores included" {
            use model = micro 72L

            for data in [ generation; multipleChoice ] do
                let run () =
                    TaskEvaluator
                        .Evaluate(
                            evaluated model,
                            tok,
                            data,
                            EvaluationOptions(MaxNewTokens = 6, BatchSize = 2, KeepPredictions = true)
                        )
                        .ToJson()

                Expect.equal (run ()) (run ()) data.Spec.Name
        }

        test "Evaluate: the IEvaluatedModel's forward pass is the one decoding and scoring use; its adapter is reported" {
            use model = micro 73L
            // favour the token "7" overwhelmingly: every generated token is "7", and the choice of sevens wins
            let boosted = Boosted(model, TestTokenizer.id '7', 1000.0, "sevens")

            let g =
                TaskEvaluator.Evaluate(
                    boosted,
                    tok,
                    generation,
                    EvaluationOptions(MaxNewTokens = 4, KeepPredictions = true)
                )

            Expect.equal [ for p in g.Predictions -> p.Completion ] [ "7777"; "7777"; "7777" ] "completions"
            Expect.equal (g.Correct, g.Adapter) (1, "sevens") "the third answer is 7777"

            let m =
                TaskEvaluator.Evaluate(boosted, tok, multipleChoice, EvaluationOptions(KeepPredictions = true))

            Expect.equal [ for p in m.Predictions -> p.Prediction ] [ "B"; "B"; "A" ] "the choices with sevens"
            Expect.equal m.Adapter "sevens" "adapter"
        }

        test "Evaluate: runs without gradients and in evaluation mode, and restores the training mode" {
            use model = micro 74L
            model.train ()
            let probe = Boosted(model, 0, 0.0, "none")

            for data in [ generation; multipleChoice ] do
                TaskEvaluator.Evaluate(probe, tok, data, EvaluationOptions(MaxNewTokens = 2))
                |> ignore

            Expect.isNonEmpty probe.Calls "the forward pass was called"
            Expect.allEqual probe.Calls (false, false) "(gradients, training) at every call"
            Expect.isTrue model.training "training mode restored"
        }
    ]
