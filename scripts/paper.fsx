// Assembles OUT/llgbm.md from paper/llgbm.template.md: every `<!-- include: PATH -->` line is replaced by the file at
// OUT/PATH (a table the other scripts wrote, or the discussion), or by a note that it is missing. Run it after the
// table scripts (llgbm pipeline runs it last).
//
//   dotnet fsi scripts/paper.fsx [RUNS] [OUT]   # defaults: runs, paper
open System
open System.IO
open System.Text.RegularExpressions

let arguments = fsi.CommandLineArgs |> Array.skip 1
let outRoot = arguments |> Array.tryItem 1 |> Option.defaultValue "paper"

let template =
    Path.Combine(__SOURCE_DIRECTORY__, "..", "paper", "llgbm.template.md")

let include' = Regex(@"^<!-- include: (?<path>[^ ]+) -->$")

let lines =
    File.ReadAllLines template
    |> Array.map (fun line ->
        let m = include'.Match line

        if not m.Success then
            line
        else
            let path = Path.Combine(outRoot, m.Groups["path"].Value)

            if File.Exists path then
                (File.ReadAllText path).TrimEnd()
            else
                let name = m.Groups["path"].Value
                $"*(`{name}` is not there yet: run the pipeline's scripts.)*")

let target = Path.Combine(outRoot, "llgbm.md")
Directory.CreateDirectory outRoot |> ignore
let temp = target + ".tmp"
File.WriteAllText(temp, String.Join("\n", lines) + "\n")
File.Move(temp, target, true)
printfn "wrote %s" target
