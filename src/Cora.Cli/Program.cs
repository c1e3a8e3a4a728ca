using System.CommandLine;
using Cora.Cli;

var root = new RootCommand("cora: CoRA (Collaborative LoRA) recommenders on a frozen LLaMA-family LLM.");
var verbose = new Option<bool>("--verbose") { Description = "Show stack traces on errors.", Recursive = true };
root.Options.Add(verbose);
root.Subcommands.Add(Commands.Train());
root.Subcommands.Add(Commands.Evaluate());
root.Subcommands.Add(Commands.Quickstart());
var parse = root.Parse(args);
try
{
    return await parse.InvokeAsync();
}
catch (Exception e) when (!parse.GetValue(verbose))
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
