using System.Reflection;
var asm = typeof(TorchSharp.torch).Assembly;
foreach (var t in asm.GetTypes())
  foreach (var m in t.GetMembers(BindingFlags.Public|BindingFlags.Static|BindingFlags.Instance|BindingFlags.DeclaredOnly))
  {
    var n = m.Name;
    if (args.Any(a => n == a) && (t.FullName!.Contains("torch+nn") || t.FullName.EndsWith("torch") || t.FullName.EndsWith("Tensor")|| t.FullName.EndsWith("Module")))
      Console.WriteLine($"{t.FullName}::{m}");
  }
