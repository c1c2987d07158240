module LLGBM.Tests.ProbeDesignTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open LLGBM
open LLGBM.Cli.Commands
open LLGBM.Cli.Pipeline
open LLGBM.Delta
open LLGBM.Experiments
open LLGBM.Tasks
open LLGBM.Text
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestModels

/// Equal up to float32 rounding of differences of hidden states: within 1e-4 of the vector's largest magnitude.
let private expectClose (actual: float32[]) (wanted: float32[]) message =
    Expect.equal actual.Length wanted.Length $"{message}: dimension"
    let scale = wanted |> Array.map (fun x -> abs (float x)) |> Array.max

    for i in 0 .. actual.Length - 1 do
        Expect.isLessThanOrEqual
            (abs (float actual[i] - float wanted[i]))
            (1e-4 * scale + 1e-9)
            $"{message}: element {i} ({actual[i]} vs {wanted[i]})"

let private names (variants: ProbeDesignVariant seq) =
    variants |> Seq.map _.Name |> List.ofSeq

[<Tests>]
let tests =
    testSequenced
    <| testList "ProbeDesign" [
        test "the standard variants: one change each from the default, distinct names and distinct cache contexts" {
            let _, baseDir, suite, _ = EvalDeltasCommandTests.fixture.Force()
            let tasks = TaskSuite.LoadAll suite
            let variants = ProbeDesignVariant.Standard(tasks, 4, 2, 7L)

            Expect.equal
                (names variants)
                [
                    "generic-5"
                    "generic-1"
                    "generic-10"
                    "generic-20"
                    "tasks-2-7"
                    "layers-2,4,-1-concat"
                    "layers-2,4,-1-mean"
                    "pool-mean"
                ]
                "names"

            let byName = variants |> Seq.map (fun v -> v.Name, v) |> Map.ofSeq
            Expect.equal byName["tasks-2-7"].Probes.Count (2 * tasks.Count) "2 prompts of every task"
            Expect.equal byName["generic-20"].Probes.Count 20 "20 generic probes"

            Expect.equal
                (byName["layers-2,4,-1-mean"].Spec.Layers |> List.ofSeq)
                [ 2; 4; -1 ]
                "middle, last, final norm"

            let tokenizer = Tokenizers.Load baseDir

            // The delta cache keys an entry by the probes' hash and the spec's key: no two variants may share both.
            let contexts =
                variants
                |> Seq.map (fun v -> DeltaCache.ProbesHash(v.Probes.Tokenize tokenizer, v.Probes.Texts), v.Spec.Key())
                |> List.ofSeq

            Expect.equal (List.distinct contexts).Length contexts.Length "distinct (probes, spec) contexts"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> ProbeDesignVariant.Standard(tasks, 1) |> ignore))
                "at least 2 layers"
                "one-layer model"
        }

        test "--variants picks names with commas in them, in order; an unknown name is named in the error" {
            let _, _, suite, _ = EvalDeltasCommandTests.fixture.Force()
            let all = ProbeDesignVariant.Standard(TaskSuite.LoadAll suite, 4)

            Expect.equal
                (names (ProbeDesignStudy.Choose(all, "pool-mean,layers-2,4,-1-concat,generic-1")))
                [ "pool-mean"; "layers-2,4,-1-concat"; "generic-1" ]
                "chosen"

            Expect.equal (names (ProbeDesignStudy.Choose(all, null))) (names all) "all by default"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> ProbeDesignStudy.Choose(all, "generic-5,generic-7") |> ignore))
                "\"generic-7\" is not a variant"
                "unknown"
        }

        test
            "variant deltas: the layer average is the mean of the concatenation's blocks, whose last block is the default delta" {
            let _, baseDir, suite, pool = EvalDeltasCommandTests.fixture.Force()
            let tasks = TaskSuite.LoadAll suite
            let all = ProbeDesignVariant.Standard(tasks, 4)

            let chosen =
                ProbeDesignStudy.Choose(all, "generic-5,layers-2,4,-1-concat,layers-2,4,-1-mean")

            let struct (adapters, deltas) = PoolDeltaVariants.Compute(baseDir, pool, chosen)
            Expect.equal adapters.Count 10 "5 tasks x 2 checkpoints"
            let finalDefault, concat, average = deltas[0], deltas[1], deltas[2]
            Expect.equal concat.Dim 384L "3 x 128"
            Expect.equal concat.ProbeTokens finalDefault.ProbeTokens "same probes"

            for i in 0 .. adapters.Count - 1 do
                let c = concat.Deltas[i]
                let block k = c[128 * k .. 128 * k + 127]
                expectClose (block 2) finalDefault.Deltas[i] $"adapter {i}: last block = final-norm delta"

                expectClose
                    average.Deltas[i]
                    (let b0, b1, b2 = block 0, block 1, block 2
                     Array.init 128 (fun j -> (b0[j] + b1[j] + b2[j]) / 3.0f))
                    $"adapter {i}: average = mean of blocks"

            // The default variant's deltas are those of the teacher embeddings (the route llgbm eval deltas takes).
            let embeddings =
                TeacherEmbeddings.Compute(baseDir, pool, tasks, TeacherEmbeddingSettings(PromptCount = 1))

            for i in 0 .. adapters.Count - 1 do
                Expect.equal adapters[i].Checkpoint.Adapter embeddings[i].Checkpoint.Adapter "same order"
                Expect.equal adapters[i].Final embeddings[i].Final "same final flag"
                expectClose finalDefault.Deltas[i] embeddings[i].Delta $"adapter {i}: default delta"

            // The last checkpoint only: the final adapters, with the same deltas.
            let struct (last, lastDeltas) =
                PoolDeltaVariants.Compute(baseDir, pool, [| finalDefault.Variant |], 1)

            Expect.equal last.Count 5 "one per task"
            Expect.isTrue (last |> Seq.forall _.Final) "only final checkpoints"

            for j in 0 .. last.Count - 1 do
                let i =
                    adapters
                    |> Seq.findIndex (fun a -> a.Checkpoint.Adapter = last[j].Checkpoint.Adapter)

                expectClose lastDeltas[0].Deltas[j] finalDefault.Deltas[i] $"{last[j].Checkpoint.Adapter}"
        }

        test "llgbm eval probe-design writes one result per variant with silhouettes, 1-NN checks and costs" {
            let root, baseDir, suite, pool = EvalDeltasCommandTests.fixture.Force()
            let out = Path.Combine(root, "probe-design.json")

            let code, stdout, stderr =
                llgbm [
                    "eval"
                    "probe-design"
                    "--base"
                    baseDir
                    "--teachers"
                    pool
                    "--tasks"
                    suite
                    "--variants"
                    "generic-1,pool-mean"
                    "--out"
                    out
                ]

            Expect.equal code 0 $"exit code ({stderr})"
            Expect.stringContains stdout "pool-mean" "table"
            Expect.stringContains stderr "2/2 pool-mean" "progress"
            let json = JsonNode.Parse(File.ReadAllText out)
            let variants = json["variants"].AsArray()
            Expect.equal variants.Count 2 "two variants"
            Expect.equal (int json["adapters"]) 10 "adapters"

            for v in variants do
                // 4 plain tasks x 2 checkpoints (the mixture left out); task level: the 4 final ones.
                let number (path: JsonNode) = path.GetValue<float>()
                Expect.equal (number v["silhouettes"].[0].["points"]) 8.0 "checkpoint points"
                Expect.equal (number v["silhouettes"].[1].["points"]) 4.0 "task points"
                Expect.equal (number v["nearest_checkpoint"].["points"]) 8.0 "1-NN points"
                let accuracy = number v["nearest_task"].["accuracy"]
                Expect.isTrue (accuracy >= 0.0 && accuracy <= 1.0) "accuracy in [0, 1]"
                Expect.isGreaterThan (number v["milliseconds_per_adapter"]) 0.0 "timed"

            let code, _, stderr =
                llgbm [
                    "eval"
                    "probe-design"
                    "--base"
                    baseDir
                    "--teachers"
                    pool
                    "--tasks"
                    suite
                    "--checkpoints"
                    "0"
                ]

            Expect.notEqual code 0 "--checkpoints 0 refused"
            Expect.stringContains stderr "at least the last checkpoint" "message"
        }

        test "both pipeline plans' delta studies evaluate runs the plan trains and name variants that exist" {
            let _, _, suite, _ = EvalDeltasCommandTests.fixture.Force()
            let all = ProbeDesignVariant.Standard(TaskSuite.LoadAll suite, 4)

            for plan in [ PipelinePlan.Full; PipelinePlan.Reduced ] do
                let trained =
                    plan.Generators
                    |> Seq.filter (fun r -> r.Seed = 0L && not r.LambdaDelta.HasValue)
                    |> Seq.map _.Config
                    |> Set.ofSeq

                for config in plan.DeltaStudy.GeneratorConfigs do
                    Expect.isTrue (trained.Contains config) $"{config}: a seed-0 run of the plan"

                let args = plan.DeltaStudy.ProbeDesignArgs |> List.ofSeq

                match args |> List.tryFindIndex ((=) "--variants") with
                | Some i -> ProbeDesignStudy.Choose(all, args[i + 1]) |> ignore
                | None -> ()
        }
    ]
