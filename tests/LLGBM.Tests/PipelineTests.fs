module LLGBM.Tests.PipelineTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open LLGBM.Cli.Pipeline
open LLGBM.Generators
open LLGBM.Tasks.Synthetic

let private repository = Repository.root

/// The config a plan runs: the repository's file with the plan's overrides, as the runner writes it.
let private effective (plan: PipelinePlan) (name: string) =
    let config =
        GeneratorConfig.Load(Path.Combine(repository, "configs", name + ".json"))

    let node = JsonNode.Parse(config.ToJson()).AsObject()

    for KeyValue(key, value) in plan.ConfigOverrides do
        node[key] <- value.DeepClone()

    System.Text.Json.JsonSerializer
        .Deserialize<GeneratorConfig>(node.ToJsonString(), GeneratorConfig.JsonOptions)
        .Validate()

[<Tests>]
let tests =
    testList "Pipeline" [
        test
            "Every generator run of both plans names a config under configs/ that loads and validates with the plan's overrides" {
            for plan in [ PipelinePlan.Full; PipelinePlan.Reduced ] do
                for run in plan.Generators do
                    effective plan run.Config |> ignore
        }

        test "The full plan runs the three main variants with three seeds, the λ sweep and the shuffled-delta control" {
            let plan = PipelinePlan.Full

            for config in [ "dnd-weight"; "multitask"; "delta-only" ] do
                let seeds =
                    plan.Generators
                    |> Seq.filter (fun r -> r.Config = config && not r.LambdaDelta.HasValue)
                    |> Seq.map (fun r -> r.Seed)
                    |> Set.ofSeq

                Expect.equal seeds (set [ 0L; 1L; 2L ]) $"{config}: seeds"

            Expect.isGreaterThanOrEqual
                (plan.Generators |> Seq.filter (fun r -> r.LambdaDelta.HasValue) |> Seq.length)
                2
                "λ sweep"

            Expect.isTrue (effective plan "multitask-shuffled").ShuffleDeltas "the control shuffles"

            Expect.sequenceEqual
                plan.RetrievalTasks
                (Seq.append SyntheticSuite.DefaultHeldOut SyntheticSuite.HeldOutFamilyMembers)
                "retrieval on the held-out tasks"
        }

        test "The reduced plan trains only tasks it has teachers for, and keeps training and held-out tasks apart" {
            let plan = PipelinePlan.Reduced

            let teacherTasks =
                plan.TeacherArgs
                |> Seq.pairwise
                |> Seq.filter (fun (a, _) -> a = "--task")
                |> Seq.map snd
                |> Set.ofSeq

            for run in plan.Generators do
                let config = effective plan run.Config
                let train = set config.TrainTasks
                let test = set config.TestTasks
                Expect.isTrue (Set.isSubset train teacherTasks) $"{run.Config}: training tasks have teachers"
                Expect.isTrue (Set.isSubset test teacherTasks) $"{run.Config}: held-out tasks have teachers"
                Expect.isEmpty (Set.intersect train test) $"{run.Config}: disjoint"

            for task in plan.RetrievalTasks do
                Expect.isTrue (teacherTasks.Contains task) $"{task} has teachers"
        }

        test
            "The transfer stage's config validates in both plans with meaning targets, and its tasks on backbone A have A's teachers" {
            for plan in [ PipelinePlan.Full; PipelinePlan.Reduced ] do
                let config = effective plan "two-stage-meaning"
                let node = JsonNode.Parse(config.ToJson()).AsObject()

                for KeyValue(key, value) in plan.Transfer.ConfigOverrides do
                    node[key] <- value.DeepClone()

                let config =
                    System.Text.Json.JsonSerializer
                        .Deserialize<GeneratorConfig>(node.ToJsonString(), GeneratorConfig.JsonOptions)
                        .Validate()

                Expect.equal config.Variant GeneratorVariant.TwoStage "two-stage"
                Expect.equal config.DeltaKind LLGBM.Delta.DeltaKind.Meaning "meaning targets"
                Expect.equal plan.Transfer.Preset "tiny-b" "the second backbone"

                if plan.Quick then
                    let teacherTasks =
                        plan.TeacherArgs
                        |> Seq.pairwise
                        |> Seq.filter (fun (a, _) -> a = "--task")
                        |> Seq.map snd
                        |> Set.ofSeq

                    Expect.isTrue (Set.isSubset (set config.TrainTasks) teacherTasks) "training tasks have A's teachers"
                    Expect.isTrue (Set.isSubset (set config.TestTasks) teacherTasks) "held-out tasks have A's teachers"
                else
                    Expect.isEmpty (Set.intersect (set config.TrainTasks) (set config.TestTasks)) "disjoint"
        }

        test "PipelinePlan.RunName matches the directory llgbm generator train gives a run" {
            Expect.equal
                (PipelinePlan.RunName("multitask", PipelineGeneratorRun("multitask", 0L, 0.3)))
                "multitask-seed0-ld0.3"
                "λ run"

            Expect.equal
                (PipelinePlan.RunName("dnd-weight", PipelineGeneratorRun("dnd-weight", 2L)))
                "dnd-weight-seed2"
                "seed run"
        }
    ]
