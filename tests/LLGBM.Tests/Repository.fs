/// The source checkout the tests run from: the folder above the test binaries that holds LLGBM.sln.
module LLGBM.Tests.Repository

open System
open System.IO

/// The repository's root folder.
let root =
    let rec up (d: DirectoryInfo) =
        if isNull d then
            failwith $"LLGBM.sln not found above the test binaries ({AppContext.BaseDirectory})"
        elif File.Exists(Path.Combine(d.FullName, "LLGBM.sln")) then
            d.FullName
        else
            up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

/// A path below the repository's root.
let path (parts: string list) =
    Path.Combine(root :: parts |> Array.ofList)
