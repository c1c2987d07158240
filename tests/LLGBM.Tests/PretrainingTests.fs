module LLGBM.Tests.PretrainingTests

open System.IO
open Expecto
open TorchSharp
open LLGBM.Checkpoints
open LLGBM.Pretraining
open LLGBM.Tasks.Synthetic
open LLGBM.Text
open LLGBM.Tests.TestModels

let private tasks names =
    SyntheticSuite.Build(SyntheticSuiteSettings(TrainCount = 50, TestCount = 10))
    |> Seq.filter (fun t -> List.contains t.Spec.Name names)
    |> Array.ofSeq

let private settings steps =
    BasePretrainingSettings(Config = Qwen2Presets.Tiny, Steps = steps, BatchSize = 16, WarmupSteps = 5, Seed = 3L)

[<Tests>]
let tests =
    testSequenced
    <| testList "Pretraining" [
        test "BasePretrainer.Train: the completion loss falls, and the same seed gives the same weights" {
            let losses = ResizeArray()

            use a =
                BasePretrainer.Train(
                    settings 40,
                    ByteLevelTokenizer(),
                    tasks [ "upper"; "add-1" ],
                    fun p -> losses.Add p.Loss
                )

            Expect.equal losses.Count 40 "one report per step"
            let first = Seq.take 5 losses |> Seq.average
            let last = Seq.skip 35 losses |> Seq.average
            Expect.isLessThan last (first * 0.6) $"loss falls ({first:F2} -> {last:F2})"

            use b =
                BasePretrainer.Train(settings 40, ByteLevelTokenizer(), tasks [ "upper"; "add-1" ])

            let sb = b.state_dict ()

            for KeyValue(name, t) in a.state_dict () do
                Expect.equal (maxAbsDiff t sb[name]) 0.0 $"{name} deterministic"
        }

        test "CompletionExamples.Encode: instruction line, prompt, then a space, the answer and end-of-text" {
            let tok = ByteLevelTokenizer()
            let t = (tasks [ "largest" ])[0]
            let e = t.Train[0]

            let struct (prompt, completion) =
                LLGBM.Training.CompletionExamples.Encode(tok, t.Spec, e, LLGBM.Tasks.PromptFormat.WithInstruction)

            Expect.equal (tok.Decode prompt) ("Largest.\n" + e.Prompt) "prompt"
            let right = e.Choices[e.AnswerIndex.Value]

            Expect.sequenceEqual
                completion
                (Array.append (System.Text.Encoding.UTF8.GetBytes(" " + right) |> Array.map int) [| 256 |])
                "the right choice, then end-of-text"
        }

        test
            "BaseModelBuilder.Build: writes a loadable checkpoint with its tokenizer, and reuses it for the same recipe" {
            SafetensorsTests.Kit.withTempDir (fun root ->
                let dir = Path.Combine(root, "base")

                let recipe steps =
                    BaseModelRecipe(
                        Preset = "tiny",
                        Training = settings steps,
                        Suite = SyntheticSuiteSettings(TrainCount = 50, TestCount = 10)
                    )

                let first = BaseModelBuilder.Build(recipe 3, dir, evaluationLimit = 2)
                Expect.isFalse first.Cached "trained"

                Expect.equal
                    (first.Evaluations |> Seq.map (fun e -> e.Format) |> Set.ofSeq)
                    (Set [ "bare"; "instructed" ])
                    "both formats"

                use model = Qwen2Checkpoint.Load dir
                Expect.equal model.Config.VocabSize 272 "tiny"
                Expect.isTrue (Tokenizers.Load dir :? ByteLevelTokenizer) "byte-level tokenizer saved"
                let stamp = File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors"))
                let again = BaseModelBuilder.Build(recipe 3, dir, evaluationLimit = 2)
                Expect.isTrue again.Cached "same recipe: reused"
                Expect.equal (File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors"))) stamp "not rewritten"
                Expect.equal again.Evaluations.Count first.Evaluations.Count "the report is read back"
                let other = BaseModelBuilder.Build(recipe 4, dir, evaluationLimit = 2)
                Expect.isFalse other.Cached "another recipe: trained again")
        }

        test "BaseModelRecipe.Hash: changes with any setting, not with the device" {
            let r =
                BaseModelRecipe(Preset = "tiny", Training = settings 10, Suite = SyntheticSuiteSettings())

            Expect.equal
                (r.Hash())
                (BaseModelRecipe(Preset = "tiny", Training = settings 10, Suite = SyntheticSuiteSettings()).Hash())
                "stable"

            Expect.notEqual
                (r.Hash())
                (BaseModelRecipe(Preset = "tiny", Training = settings 11, Suite = SyntheticSuiteSettings()).Hash())
                "steps"

            Expect.notEqual
                (r.Hash())
                (BaseModelRecipe(Preset = "tiny", Training = settings 10, Suite = SyntheticSuiteSettings(Seed = 1L))
                    .Hash())
                "suite seed"

            Expect.equal
                (r.Hash())
                (BaseModelRecipe(
                    Preset = "tiny",
                    Training =
                        BasePretrainingSettings(
                            Config = Qwen2Presets.Tiny,
                            Steps = 10,
                            BatchSize = 16,
                            WarmupSteps = 5,
                            Seed = 3L,
                            Device = torch.META
                        ),
                    Suite = SyntheticSuiteSettings()
                )
                    .Hash())
                "device"
        }
    ]
