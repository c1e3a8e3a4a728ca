// MSBuild's RoslynCodeTaskFactory compiles this as the task of MlNetLoadableClass.targets. It writes into the freshly compiled
// assembly the attribute ML.NET's own assemblies carry,
//   [assembly: Microsoft.ML.LoadableClass(typeof(T), typeof(T), null, typeof(Microsoft.ML.SignatureLoadModel), userName, loaderSignature)]
// which C# cannot write because ML.NET keeps that attribute internal. ML.NET's model loader registers the assembly a saved model
// names (its loader assembly) and reads this attribute, so a plain mlContext.Model.Load finds Cora's loader with no call first.
using System;
using System.IO;
using System.Linq;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Mono.Cecil;

public class CoraAddLoadableClass : Task
{
    /// <summary>The compiled assembly (its .pdb beside it is rewritten with it).</summary>
    [Required] public string Assembly { get; set; }
    /// <summary>Folders holding the assemblies it references (Microsoft.ML.Core among them).</summary>
    [Required] public string[] SearchDirectories { get; set; }
    /// <summary>Full name of the loadable type, which has a static Create(IHostEnvironment, ModelLoadContext).</summary>
    [Required] public string InstanceType { get; set; }
    [Required] public string UserName { get; set; }
    [Required] public string LoaderSignature { get; set; }

    public override bool Execute()
    {
        try
        {
            var resolver = new DefaultAssemblyResolver();
            foreach (var d in SearchDirectories.Where(System.IO.Directory.Exists).Distinct()) resolver.AddSearchDirectory(d);
            bool symbols = File.Exists(Path.ChangeExtension(Assembly, ".pdb"));
            using (var asm = AssemblyDefinition.ReadAssembly(Assembly, new ReaderParameters { ReadWrite = true, AssemblyResolver = resolver, ReadSymbols = symbols }))
            {
                var m = asm.MainModule;
                if (asm.CustomAttributes.Any(a => a.AttributeType.FullName == "Microsoft.ML.LoadableClassAttribute"))
                {
                    Log.LogMessage(MessageImportance.Low, "Cora: " + Assembly + " already carries its LoadableClass attribute.");
                    return true;
                }
                var coreRef = m.AssemblyReferences.FirstOrDefault(r => r.Name == "Microsoft.ML.Core");
                if (coreRef == null) { Log.LogError("Cora: " + Assembly + " does not reference Microsoft.ML.Core."); return false; }
                var core = resolver.Resolve(coreRef);
                var attr = core.MainModule.GetType("Microsoft.ML.LoadableClassAttribute");
                var sig = core.MainModule.GetType("Microsoft.ML.SignatureLoadModel");
                var target = m.GetType(InstanceType);
                if (attr == null || sig == null) { Log.LogError("Cora: Microsoft.ML.Core has no LoadableClassAttribute or SignatureLoadModel (ML.NET changed; Cora supports 5.0.x)."); return false; }
                if (target == null) { Log.LogError("Cora: " + Assembly + " has no type " + InstanceType + "."); return false; }
                // LoadableClassAttribute(Type instType, Type loaderType, Type argType, Type sigType, string userName, params string[] loadNames)
                var ctor = attr.Methods.Single(c => c.IsConstructor && c.Parameters.Count == 6
                    && c.Parameters.Take(4).All(p => p.ParameterType.FullName == "System.Type") && c.Parameters[5].ParameterType.IsArray);
                var type = m.ImportReference(typeof(Type));
                var ca = new CustomAttribute(m.ImportReference(ctor));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(type, target));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(type, target));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(type, null));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(type, m.ImportReference(sig)));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(m.TypeSystem.String, UserName));
                ca.ConstructorArguments.Add(new CustomAttributeArgument(new ArrayType(m.TypeSystem.String),
                    new[] { new CustomAttributeArgument(m.TypeSystem.String, LoaderSignature) }));
                asm.CustomAttributes.Add(ca);
                asm.Write(new WriterParameters { WriteSymbols = symbols, DeterministicMvid = true });
            }
            Log.LogMessage(MessageImportance.Normal, "Cora: " + Assembly + " now names " + InstanceType + " as ML.NET's loader of '" + LoaderSignature + "'.");
            return true;
        }
        catch (Exception e)
        {
            Log.LogError("Cora: could not add ML.NET's LoadableClass attribute to " + Assembly + ": " + e.Message);
            return false;
        }
    }
}
