module LLGBM.Tests.BenchDeltaCommandTests

open System
open System.Text
open System.Text.Json
open Expecto
open LLGBM.Delta
open LLGBM.Tests.TestCli

[<Tests>]
let tests =
    testList "BenchDeltaCommand" [
        test "bench delta --json reports positive rates and ratios and one forward call per probe batch and adapter" {
            let (code, json, err) =
                llgbm [
                    "bench"
                    "delta"
                    "--preset"
                    "tiny"
                    "--probes"
                    "5"
                    "--probe-batch"
                    "2"
                    "--adapters"
                    "3"
                    "--microbatch"
                    "2"
                    "--rank"
                    "2"
                    "--iters"
                    "1"
                    "--warmup"
                    "0"
                    "--threads"
                    "1"
                    "--json"
                ]

            Expect.equal code 0 err
            use doc = JsonDocument.Parse json
            let root = doc.RootElement

            let number (name: string) =
                match root.TryGetProperty name with
                | true, value -> value.GetDouble()
                | _ -> failtest $"no \"{name}\" in {json}"

            let integer (name: string) = int64 (number name)

            // 5 probes in batches of 2: batches of 2, 2 and 1.
            let probeBatches = 3L
            Expect.equal (integer "probe_batch_size") 2L "probes per batch"
            Expect.equal (integer "probe_batch_count") probeBatches "probe batches"

            Expect.equal
                (integer "base_forward_calls")
                probeBatches
                "the base pass runs once per probe batch, when the embedder is built"

            Expect.equal
                (number "forward_calls_per_adapter")
                (float probeBatches)
                "no base pass is repeated per adapter"

            Expect.equal
                (number "forward_calls_per_batched_call")
                (float probeBatches)
                "a batched call takes as many passes as one adapter"

            // Byte-level tokens: one per UTF-8 byte of each generic probe (all shorter than the 256-token limit).
            let tokens =
                ProbeSet.GenericPreambles
                |> Seq.sumBy (fun p -> Encoding.UTF8.GetByteCount(ProbeSet.GenericText p))

            Expect.equal (integer "probe_tokens") (int64 tokens) "real probe tokens"
            Expect.equal (integer "threads") 1L "--threads 1"
            Expect.equal (integer "parameters") 774272L "the tiny preset has 774,272 parameters"
            // Per layer r·(in + out) for q (128→128), k and v (128→64), gate and up (128→352), down (352→128); 4 layers, r 2.
            let perLayer = 2L * (256L + 192L + 192L + 480L + 480L + 480L)
            Expect.equal (integer "adapter_parameters") (4L * perLayer) "A and B of the six modules of four layers"

            Expect.equal
                (root.GetProperty("lora_targets").GetString())
                "q_proj,k_proj,v_proj,gate_proj,up_proj,down_proj"
                "targets"

            for name in
                [
                    "seconds_base_forward"
                    "seconds_adapted_forward"
                    "seconds_per_adapter"
                    "adapters_per_second"
                    "batched_adapters_per_second"
                    "batched_speedup"
                    "delta_vs_adapted_forward"
                    "adapted_forward_vs_base_forward"
                    "seconds_differentiable_delta"
                    "differentiable_delta_vs_base_forward"
                    "differentiable_delta_vs_adapted_forward"
                ] do
                let value = number name
                Expect.isTrue (Double.IsFinite value && value > 0.0) $"{name} is positive and finite: {value}"

            // With one timed round every ratio is a ratio of that round's times.
            Expect.floatClose
                Accuracy.medium
                (number "adapters_per_second" * number "seconds_per_adapter")
                1.0
                "rate and time agree"

            Expect.floatClose
                Accuracy.medium
                (number "differentiable_delta_vs_base_forward")
                (number "seconds_differentiable_delta" / number "seconds_base_forward")
                "ratio to the base forward"

            Expect.floatClose
                Accuracy.medium
                (number "differentiable_delta_vs_adapted_forward")
                (number "seconds_differentiable_delta" / number "seconds_adapted_forward")
                "ratio to the adapted forward"

            Expect.floatClose
                Accuracy.medium
                (number "delta_vs_adapted_forward")
                (number "seconds_per_adapter" / number "seconds_adapted_forward")
                "one delta against one adapted forward"
        }
        test "bench delta prints a table without --json" {
            let (code, out, err) =
                llgbm [
                    "bench"
                    "delta"
                    "--preset"
                    "micro"
                    "--probes"
                    "1"
                    "--adapters"
                    "1"
                    "--microbatch"
                    "1"
                    "--rank"
                    "1"
                    "--iters"
                    "1"
                    "--warmup"
                    "0"
                ]

            Expect.equal code 0 err
            Expect.stringContains out "adapters/s" "throughput row"
            Expect.stringContains out "relative to adapted forward" "ratio row"
            Expect.stringContains err "[bench]" "progress on standard error"
        }
        test "bench delta rejects a non-positive count, naming the option" {
            let (code, _, err) = llgbm [ "bench"; "delta"; "--adapters"; "0" ]
            Expect.equal code 2 err
            Expect.stringContains err "--adapters" "names the option"
        }
    ]
