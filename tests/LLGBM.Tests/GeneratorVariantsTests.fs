module LLGBM.Tests.GeneratorVariantsTests

open System.Collections.Generic
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Generators
open LLGBM.Lora
open LLGBM.Tests.TestModels
open LLGBM.Experiments

let private lora =
    LoraConfig(Rank = 2, Alpha = 4.0, TargetModules = [| "q_proj"; "v_proj"; "down_proj" |])

let private small =
    GeneratorConfig(
        HiddenSize = 16,
        EmbeddingSize = 8,
        ConditionPrompts = 3,
        TokenWidth = 8,
        ConvBlocks = [| [| 4; 12 |] |],
        Seed = 9L
    )

let private maxDiff (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a - b).abs().max()
    d.item<float32>()

[<Tests>]
let tests =
    testList "GeneratorVariants" [
        test "HyperConvGenerator with zero head weights emits the PEFT initial LoRA of its seed, as a grid and as a set" {
            let config =
                GeneratorConfig(
                    HiddenSize = 16,
                    EmbeddingSize = 8,
                    ConditionPrompts = 3,
                    TokenWidth = 8,
                    ConvBlocks = [| [| 4; 12 |] |],
                    Seed = 9L,
                    HeadInitScale = 0.0
                )

            use gen = new HyperConvGenerator(config, lora, Qwen2Presets.Micro, 5, 9L)
            use c = torch.randn (2L, 3L, 5L)
            use grid = gen.GenerateGrid c
            Expect.sequenceEqual grid.shape [| 2L; gen.Layout.Tokens; int64 gen.Layout.Channels |] "grid [N, T, W + 2]"
            use set = gen.Generate c
            set.ValidateFor Qwen2Presets.Micro |> ignore
            use initial = LoraSet.Initialize(lora, Qwen2Presets.Micro, 9L)

            for KeyValue(path, m) in initial.Modules do
                let g = set.Modules[path]
                Expect.isLessThan (maxDiff g.A[1L] m.A) 1e-5f $"{path} A"
                Expect.isLessThan (maxDiff g.B[0L] m.B) 1e-6f $"{path} B = 0"
                Expect.equal g.Scale m.Scale $"{path} scale"
        }

        test "HyperConvGenerator needs exactly K encodings per condition and says so" {
            use gen = new HyperConvGenerator(small, lora, Qwen2Presets.Micro, 5, 9L)
            use c = torch.randn (1L, 4L, 5L)
            let message = errorMessage<LlgbmException>(fun () -> gen.GenerateGrid c |> ignore)
            Expect.stringContains message "[N, 3, 5]" "names the expected shape"
        }

        test "WeightLosses.Tokens is the mean squared error over real entries only" {
            use g = torch.tensor([| 1.0f; 2.0f; 3.0f; 4.0f |]).reshape(2L, 2L)
            use t = torch.tensor([| 0.0f; 2.0f; 5.0f; 100.0f |]).reshape(2L, 2L)
            use mask = torch.tensor([| true; true; true; false |]).reshape(2L, 2L)
            use loss = WeightLosses.Tokens(g, t, mask)
            // (1 + 0 + 4) / 3; the masked entry (4 against 100) does not count.
            Expect.floatClose Accuracy.high (float (loss.item<float32>())) (5.0 / 3.0) "masked MSE"
        }

        test "TwoStageGenerator generates exactly what its decoder makes of its predicted delta" {
            use gen = new TwoStageGenerator(small, lora, Qwen2Presets.Micro, 5, 7, 9L)
            use c = torch.randn (3L, 4L, 5L)
            use predicted = gen.PredictDelta c
            Expect.sequenceEqual predicted.shape [| 3L; 7L |] "δ̂ [N, delta width]"
            use direct = gen.Generate c
            use chained = gen.Decode predicted

            for KeyValue(path, m) in direct.Modules do
                Expect.isLessThan (maxDiff m.A chained.Modules[path].A) 1e-6f $"{path} A"
                Expect.isLessThan (maxDiff m.B chained.Modules[path].B) 1e-6f $"{path} B"
        }

        test "DeltaHead.Frozen passes gradients to the adapter but not to the head; forward trains the head" {
            let paths = lora.Paths(Qwen2Presets.Micro.NumHiddenLayers)

            let inputs =
                LoraModuleSlot.Of(lora, Qwen2Presets.Micro) |> Seq.sumBy (fun s -> s.FactorSize)

            use head = new DeltaHead(paths, inputs, 6, 1L)

            // The head starts at zero; give it weights so that the adapter's gradient is not zero.
            (fun () ->
                use _ = torch.no_grad ()
                use w = torch.randn ([| 6L; inputs |], generator = new torch.Generator(4UL))
                head.head.weight.copy_ w |> ignore) ()

            use gen = new HyperMlpGenerator(small, lora, Qwen2Presets.Micro, 5, 9L)
            use c = torch.randn (2L, 3L, 5L)
            use set = gen.Generate c
            use out = head.Frozen set
            use loss = out.square().sum()
            loss.backward ()
            Expect.isNull head.head.weight.grad "the head gets no gradient through Frozen"

            for struct (name, p) in gen.named_parameters () do
                if name.StartsWith "heads" then
                    Expect.isNotNull p.grad $"{name} gets a gradient"

            use set2 = gen.Generate c
            use trained = head.forward set2
            use loss2 = trained.square().sum()
            loss2.backward ()
            Expect.isNotNull head.head.weight.grad "forward trains the head"
        }

        test "BatchedLoraSets: Select, Narrow and RepeatEach agree with indexing the factors" {
            use gen = new HyperMlpGenerator(small, lora, Qwen2Presets.Micro, 5, 9L)
            use c = torch.randn (3L, 3L, 5L)
            use set = gen.Generate c
            use one = BatchedLoraSets.Select(set, 2L)
            use first = BatchedLoraSets.Narrow(set, 0L, 2L)
            use repeated = BatchedLoraSets.RepeatEach(set, 2L)

            for KeyValue(path, m) in set.Modules do
                Expect.equal (maxDiff one.Modules[path].A m.A[2L]) 0.0f $"{path} select"
                Expect.equal first.Modules[path].A.shape[0] 2L $"{path} narrow count"
                Expect.equal (maxDiff first.Modules[path].B[1L] m.B[1L]) 0.0f $"{path} narrow"
                Expect.equal (maxDiff repeated.Modules[path].A[5L] m.A[2L]) 0.0f $"{path} repeat: row 5 is adapter 2"
                Expect.equal (maxDiff repeated.Modules[path].A[4L] m.A[2L]) 0.0f $"{path} repeat: row 4 is adapter 2"
        }

        test "GeneratorRun.InDomainSample spreads its picks over the training tasks" {
            let tasks = [
                for i in 0..18 ->
                    LLGBM.Tasks.TaskData(
                        LLGBM.Tasks.TaskSpec(Name = $"t{i}", Domain = "d", Kind = LLGBM.Tasks.TaskKind.Generation),
                        [||],
                        [||]
                    )
            ]

            let picked = GeneratorRun.InDomainSample(tasks, 5) |> Seq.map (fun t -> t.Spec.Name)
            Expect.sequenceEqual picked [ "t0"; "t3"; "t7"; "t11"; "t15" ] "i · 19 / 5"
            Expect.equal (GeneratorRun.InDomainSample(tasks, 40).Count) 19 "all when asking for more"
        }
    ]
