module LLGBM.Tests.AdapterCommandTests

open System.IO
open System.Text.Json
open Expecto
open LLGBM.Checkpoints
open LLGBM.Cli
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestCli
open LLGBM.Tests.SafetensorsTests.Kit


/// The logits `forward --json` prints, row-major.
let private printedLogits (args: string list) =
    let (code, json, err) = llgbm ("forward" :: args @ [ "--json" ])
    Expect.equal code 0 err
    use doc = JsonDocument.Parse json

    [|
        for row in doc.RootElement.GetProperty("logits").EnumerateArray() do
            for v in row.EnumerateArray() -> v.GetSingle()
    |]

let private maxGap (a: float32[]) (b: float32[]) =
    Array.map2 (fun (x: float32) y -> abs (float x - float y)) a b |> Array.max

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

/// A micro base checkpoint with the byte-level tokenizer's files, and a random adapter for it saved in PEFT's format.
let private setUp root =
    let baseDir = Path.Combine(root, "base")
    let adapterDir = Path.Combine(root, "adapter")

    let (code, _, err) =
        llgbm [ "base"; "init"; "--preset"; "micro"; "--out"; baseDir; "--seed"; "3" ]

    Expect.equal code 0 err
    ByteLevelTokenizer().Save baseDir
    use lora = randomLora Qwen2Presets.Micro 8L 4L 0.3 2.0 everyModule
    PeftAdapter.Save(adapterDir, LoraConfig(Rank = 4, Alpha = 8.0), lora)
    baseDir, adapterDir

[<Tests>]
let tests =
    testList "AdapterCommand" [
        test "merge-into-base writes a checkpoint that forwards to the adapted base's logits, with the tokenizer files" {
            withTempDir (fun root ->
                let (baseDir, adapterDir) = setUp root
                let mergedDir = Path.Combine(root, "merged")

                let (code, out, err) =
                    llgbm [
                        "adapter"
                        "merge-into-base"
                        "--model"
                        baseDir
                        "--adapter"
                        adapterDir
                        "--out"
                        mergedDir
                    ]

                Expect.equal code 0 err
                Expect.stringContains out "14 modules" "reports the modules merged"
                let ids = [ "--ids"; "5,1,60,7" ]
                let merged = printedLogits ([ "--model"; mergedDir ] @ ids)
                let adapted = printedLogits ([ "--model"; baseDir; "--adapter"; adapterDir ] @ ids)
                let plain = printedLogits ([ "--model"; baseDir ] @ ids)
                Expect.isLessThan (maxGap merged adapted) 1e-4 "merged = base with the adapter"
                Expect.isGreaterThan (maxGap merged plain) 1e-2 "and not the base"

                for name in [ "tokenizer.json"; "tokenizer_config.json" ] do
                    Expect.sequenceEqual
                        (File.ReadAllBytes(Path.Combine(mergedDir, name)))
                        (File.ReadAllBytes(Path.Combine(baseDir, name)))
                        $"{name} copied"

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(mergedDir, "config.json")))

                Expect.equal
                    (config.RootElement.GetProperty("torch_dtype").GetString())
                    "float32"
                    "the base's dtype by default")
        }
        test "merge-into-base wants --force to replace a checkpoint, stores bf16 on request, and names a bad adapter" {
            withTempDir (fun root ->
                let (baseDir, adapterDir) = setUp root

                let merge extra =
                    llgbm (
                        [ "adapter"; "merge-into-base"; "--model"; baseDir; "--adapter"; adapterDir ]
                        @ extra
                    )

                let (code, _, err) = merge [ "--out"; baseDir ]
                Expect.equal code 2 "refused"
                Expect.stringContains err "--force" "says how"
                let mergedDir = Path.Combine(root, "merged")
                let (code, _, err) = merge [ "--out"; mergedDir; "--dtype"; "bf16" ]
                Expect.equal code 0 err

                use config =
                    JsonDocument.Parse(File.ReadAllText(Path.Combine(mergedDir, "config.json")))

                Expect.equal (config.RootElement.GetProperty("torch_dtype").GetString()) "bfloat16" "torch_dtype"
                use weights = SafetensorsReader.Open(Path.Combine(mergedDir, "model.safetensors"))

                Expect.equal
                    (weights.Entries["model.layers.0.self_attn.q_proj.weight"].DType)
                    SafetensorsDType.BF16
                    "stored as bf16"

                let (code, _, err) = merge [ "--out"; mergedDir; "--force"; "--dtype"; "f8" ]
                Expect.equal code 2 "unknown dtype"
                Expect.stringContains err "--dtype f8" "names the option"
                File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), "{\"bias\": \"all\"}")
                let (code, _, err) = merge [ "--out"; mergedDir; "--force" ]
                Expect.equal code 2 "bad adapter"
                Expect.stringContains err "adapter_config.json" "names the file"
                Expect.stringContains err "bias" "names the field")
        }
    ]
