// The cost table: the wall time of one generator training step of each benchmarked config against the first
// (`llgbm bench generator`, RUNS/bench/generator.json), and the time to generate one adapter against the time to
// train one teacher (the pool's manifest). Writes OUT/tables/cost.md (+ .tex).
//
//   ./llgbm --help >/dev/null                       # builds the library loaded by Common.fsx (once)
//   dotnet fsi scripts/cost-table.fsx [RUNS] [OUT]  # defaults: runs, paper
#load "Common.fsx"

open System.IO
open Common

let benchFile = layout.Bench "generator"

if not (File.Exists benchFile) then
    fail $"{benchFile}: no generator benchmark; run llgbm bench generator --json > {benchFile} (llgbm pipeline does)."

let bench = readJson benchFile

let number (name: string) =
    (required benchFile bench name).GetValue<float>()

let configs =
    (required benchFile bench "configs").AsArray()
    |> Seq.map (fun n -> n.GetValue<string>())
    |> List.ofSeq

let seconds =
    (required benchFile bench "step_seconds").AsArray()
    |> Seq.map (fun n -> n.GetValue<float>())
    |> List.ofSeq

let ratios =
    (required benchFile bench "step_ratios").AsArray()
    |> Seq.map (fun n -> n.GetValue<float>())
    |> List.ofSeq

let steps = {
    Caption =
        "Wall time of one generator training step (median, same data and machine, one run of llgbm bench generator)"
    Left = 1
    Header = [ "config"; "ms per step"; $"× {configs.Head}" ]
    Rows = List.map3 (fun c s r -> [ c; fixedDigits 1 (s * 1000.0); fixedDigits 2 r ]) configs seconds ratios
    Notes = [
        "Every step generates 8 adapters; the delta term runs the base model on the 5 generic probes for the adapters it covers (delta_adapters)."
    ]
}

let teacher = number "teacher_seconds"
let generate = number "generate_seconds"
let full = number "encode_and_generate_seconds"

let generation = {
    Caption = "Generating an adapter against training a teacher"
    Left = 1
    Header = [ "step"; "seconds"; "teacher time / this" ]
    Rows = [
        [ "train one teacher (mean over the pool)"; fixedDigits 1 teacher; "1" ]
        [
            "generate one adapter from an encoded condition"
            fixedDigits 4 generate
            fixedDigits 0 (teacher / generate)
        ]
        [
            "encode 16 prompts and generate"
            fixedDigits 4 full
            fixedDigits 0 (teacher / full)
        ]
    ]
    Notes = [
        "Drag-and-Drop LLMs reports savings of 2,500–12,000× against full fine-tuning at 0.5B–7B scale."
    ]
}

writeTables "cost" [ steps; generation ]
printfn "wrote %s" (Path.Combine(outRoot, "tables", "cost.md"))
